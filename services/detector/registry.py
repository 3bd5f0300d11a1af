"""Detectors by name. `dfine` joins `motion` here when the D-FINE model lands."""

from __future__ import annotations

from shared.errors import InputError
from shared.schemas import DetectOptions

from .motion import MotionDetector

# class-name tables for filtering by name (D-FINE: ids are the checkpoint's 0-based class indices;
# the Objects365 people/ball ids the group uses are 0 person, 36 sports ball ... by id)
CLASS_NAMES = {"motion": {"player": 1, "ball": 2}, "dfine": {"person": 0}}
AVAILABLE = tuple(CLASS_NAMES)


def check_detector(name: str) -> None:
    if name not in AVAILABLE:
        raise InputError(f"unknown detector {name!r}; available: {', '.join(AVAILABLE)}", field="detector")


def build_detector(options: DetectOptions, device: str = "cpu"):
    """A ready detector for `options` (device is used by model-based detectors)."""
    check_detector(options.detector)
    if options.detector == "dfine":
        from .dfine.detector import DFINEDetector

        return DFINEDetector.from_weights(options.weights, options.size or "l", options.dataset or "obj365", device)
    return MotionDetector()


def resolve_classes(options: DetectOptions) -> set[int] | None:
    """Class filter as ids; names are looked up in the detector's class table."""
    if not options.classes:
        return None
    names = CLASS_NAMES.get(options.detector, {})
    ids = set()
    for value in options.classes:
        if isinstance(value, int):
            ids.add(value)
        elif value.lower() in names:
            ids.add(names[value.lower()])
        else:
            raise InputError(
                f"unknown class {value!r} for detector {options.detector!r}; known: {sorted(names)}",
                field="classes",
            )
    return ids
