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

        return DFINEDetector.from_weights(
            options.weights, options.size or "l", options.dataset or "obj365", device, batch_size=options.batch_size
        )
    return MotionDetector()


def resolve_classes(options: DetectOptions, own_names: list[str] | None = None) -> set[int] | None:
    """Class filter as ids; names are looked up in the detector's class table, or in a fine-tuned checkpoint's
    own class names (`own_names`, known once the worker has read it). Before that (the API, which never loads
    checkpoints) a name outside the table passes when D-FINE weights are given: the worker decides."""
    if not options.classes:
        return None
    table = CLASS_NAMES.get(f"{options.detector}/{options.dataset}", CLASS_NAMES.get(options.detector, {}))
    if own_names:
        table = {name.lower(): i for i, name in enumerate(own_names)}
    deferred = own_names is None and options.detector == "dfine" and bool(options.weights)
    ids = set()
    for value in options.classes:
        if isinstance(value, int):
            ids.add(value)
        elif value.lower() in table:
            ids.add(table[value.lower()])
        elif not deferred:
            raise InputError(
                f"unknown class {value!r} for detector {options.detector!r}; known: {sorted(table)}",
                field="classes",
            )
    return ids
