"""Detectors by name. `dfine` joins `motion` here when the D-FINE model lands."""

from __future__ import annotations

from shared.errors import InputError
from shared.schemas import DetectOptions

from .motion import MotionDetector

COCO = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign parking_meter "
    "bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag tie suitcase frisbee "
    "skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass "
    "cup fork knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake chair couch "
    "potted_plant bed dining_table toilet tv laptop mouse remote keyboard cell_phone microwave oven toaster sink "
    "refrigerator book clock vase scissors teddy_bear hair_drier toothbrush"
).split()
# Class names per detector for `--classes NAME,...`; D-FINE ids are the checkpoint's 0-based indices.
# Objects365 checkpoints index classes by the 1-based category id (366 outputs, 0 unused; measured on the
# official code and the group's fork, reference/dfine_train/TRAINING_SPEC.md §8): `person` is 1. Only that
# name is known so far; the group filters by ids (0,1,36,156,240).
CLASS_NAMES = {
    "motion": {"player": 1, "ball": 2},
    "dfine": {"person": 0},
    "dfine/coco": {name: i for i, name in enumerate(COCO)},
    "dfine/crowdhuman": {"person": 0},
    "dfine/obj365": {"person": 1},
}
AVAILABLE = ("motion", "dfine")


def check_detector(name: str) -> None:
    if name not in AVAILABLE:
        raise InputError(f"unknown detector {name!r}; available: {', '.join(AVAILABLE)}", field="detector")


def build_detector(options: DetectOptions, device: str = "cpu"):
    """A ready detector for `options` (device is used by model-based detectors)."""
    check_detector(options.detector)
    if options.detector == "dfine":
        from .dfine.detector import DFINEDetector

        size, dataset = dfine_model(options)
        if str(options.weights).endswith(".onnx"):
            from .dfine.onnx_detector import OnnxDFINEDetector

            return OnnxDFINEDetector(options.weights, device, batch_size=options.batch_size)
        return DFINEDetector.from_weights(options.weights, size, dataset, device, batch_size=options.batch_size)
    return MotionDetector()


# motpipe's own class ids (the group's ground truth): what the det_db's classes sidecar and tracks carry
MOTPIPE_CLASSES = {"player": 1, "ball": 2}


def _name(text: str) -> str:
    """A class name as the tables spell it: `"sports ball"` -> `sports_ball`."""
    return text.strip().strip("'\"").strip().lower().replace(" ", "_")


def _entries(options: DetectOptions) -> list[tuple[str | None, int | str]]:
    """`--classes` entries as (motpipe class or None, detector class): `player=person`, `ball=36`, `person`."""
    out = []
    for value in options.classes or []:
        target, source = value.split("=", 1) if isinstance(value, str) and "=" in value else (None, value)
        if isinstance(source, str) and source.strip().lstrip("-").isdigit():
            source = int(source)
        out.append((target.strip() if target is not None else None, source))
    return out


def _table(options: DetectOptions, own_names: list[str] | None) -> dict[str, int]:
    if own_names:
        return {_name(name): i for i, name in enumerate(own_names)}
    return CLASS_NAMES.get(f"{options.detector}/{options.dataset}", CLASS_NAMES.get(options.detector, {}))


def with_model_identity(options: DetectOptions) -> DetectOptions:
    """`options` with a D-FINE checkpoint's size and dataset filled in from the checkpoint (the class names
    of `--classes` are looked up in that dataset's table)."""
    if options.detector != "dfine":
        return options
    size, dataset = dfine_model(options)
    return options.model_copy(update={"size": size, "dataset": dataset})


def dfine_model(options: DetectOptions) -> tuple[str, str]:
    """The D-FINE size and dataset of `options.weights`, read from the checkpoint (no torch needed); a given
    size or dataset that contradicts it is an InputError in one line."""
    if not options.weights:
        raise InputError("dfine needs weights (a checkpoint path)", field="weights")
    from .dfine.identify import resolve

    size, dataset, _ = resolve(options.weights, options.size, options.dataset)
    return size, dataset


def resolve_classes(options: DetectOptions, own_names: list[str] | None = None) -> set[int] | None:
    """Class filter as detector ids; names are looked up in the detector's class table, or in a fine-tuned
    checkpoint's own class names (`own_names`, known once the worker has read it). Before that (the API, which
    never loads checkpoints) a name outside the table passes when D-FINE weights are given: the worker decides.
    `player=person` keeps `person` (and calls it player, see `class_map`)."""
    if not options.classes:
        return None
    table = _table(options, own_names)
    deferred = own_names is None and options.detector == "dfine" and bool(options.weights)
    ids = set()
    for target, source in _entries(options):
        if target is not None and _name(target) not in MOTPIPE_CLASSES and not target.isdigit():
            raise InputError(f"unknown motpipe class {target!r} in {target}={source}: player, ball or an id",
                             field="classes")  # fmt: skip
        if isinstance(source, int):
            ids.add(source)
        elif _name(source) in table:
            ids.add(table[_name(source)])
        elif not deferred:
            known = ", ".join(sorted(table)[:5]) + (", ..." if len(table) > 5 else "")
            raise InputError(f"unknown class {source!r} for detector {options.detector!r}; known: {known}",
                             field="classes")  # fmt: skip
    return ids


def class_map(options: DetectOptions, own_names: list[str] | None = None) -> dict[int, int] | None:
    """Detector class id -> motpipe class id (1 player, 2 ball, others by id) when the detections' classes
    mean motpipe's: the motion detector's do; `--classes player=person,ball="sports ball"` maps a checkpoint's
    (every entry must name its motpipe class); a fine-tune whose classes are named after motpipe's maps
    itself. None: the classes are unknown (no sidecar is written)."""
    if options.detector == "motion":
        return {v: v for v in MOTPIPE_CLASSES.values()}
    entries = _entries(options)
    if entries and all(target is not None for target, _ in entries):
        table = _table(options, own_names)
        return {(source if isinstance(source, int) else table[_name(source)]):
                MOTPIPE_CLASSES.get(_name(target)) or int(target) for target, source in entries}  # fmt: skip
    names = [_name(n) for n in own_names or []]
    if any(n in MOTPIPE_CLASSES for n in names):
        return {i: MOTPIPE_CLASSES.get(n, i + 1) for i, n in enumerate(names)}
    return None
