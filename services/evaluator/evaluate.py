"""One evaluation: ground truth + tracks -> the metrics JSON of ARCHITECTURE.md (pure core).

`evaluate_fields` gives the report's fields as plain values and `report_json` writes them as the contract
model would: `motpipe eval` uses both and never imports pydantic (~60 ms of a ~0.3 s command);
`evaluate` wraps the same fields in `MetricsReport` for the API, the store, sweeps and training.
"""

from __future__ import annotations

import json
import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.errors import InputError
from shared.formats.mot_txt import MotTable

if TYPE_CHECKING:
    from shared.schemas import MetricsReport

from .framewise import framewise_metrics
from .metrics.report import trackeval_metrics_and_pairs

CLASS_NAMES = {1: "player", 2: "ball"}


def select_classes(table: MotTable, classes: list[int] | None, is_prediction: bool) -> MotTable:
    """Keep rows of the given classes. Predictions without class information (all -1) are kept whole."""
    if not classes:
        return table
    if is_prediction and len(table) and (table.cls < 0).all():
        return table
    return table.select(np.isin(table.cls, classes))


def class_name(cls: int) -> str:
    return CLASS_NAMES.get(int(cls), str(int(cls)))


def parse_frame_list(text: str) -> list[int]:
    """'1-300,512' -> [1, ..., 300, 512]; an error names the bad part."""
    frames: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, sep, last = part.partition("-")
        try:
            lo, hi = int(first), int(last) if sep else int(first)
        except ValueError:
            raise InputError(f"not a frame or range: {part!r} (use e.g. 1-300,512)", field="annotated_frames") from None
        if lo < 1 or hi < lo:
            raise InputError(f"bad frame range {part!r}", field="annotated_frames")
        frames.update(range(lo, hi + 1))
    if not frames:
        raise InputError("no frames given", field="annotated_frames")
    return sorted(frames)


def _on_frames(table: MotTable, frames: np.ndarray, compact: bool) -> MotTable:
    """Rows on the given (sorted) frames; `compact` renumbers them 1..K as if only those frames existed."""
    kept = table.select(np.isin(table.frame, frames))
    if not compact:
        return kept
    return MotTable(np.searchsorted(frames, kept.frame) + 1, kept.id, kept.boxes, kept.conf, kept.cls, kept.vis)


def in_background(function, *args):
    """Start `function(*args)` in a thread; the returned call waits and gives its result (or raises its
    error). For work whose compiled part releases the GIL: the group's block beside TrackEval's, the
    prediction file parsed beside the ground truth (on two cores, ~45 ms of a ~0.3 s `motpipe eval`)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed to the waiting caller
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()

    def result():
        worker.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return result


class _EncodedRows(list):
    """Per-frame rows with their JSON text, made in the thread that computed them: the encoder holds the GIL,
    which TrackEval's kernel has released meanwhile, so the text costs the command nothing (~11 ms otherwise
    at 5000 frames). `report_json` uses the text; only callers that write the JSON ask for it."""

    text: str


def _group_block(gt: MotTable, pred: MotTable, iou: float, encode_rows: bool) -> dict:
    group = framewise_metrics(gt, pred, iou)
    if not encode_rows:
        return group
    rows = _EncodedRows(group["per_frame"])
    rows.text = _dumps(group["per_frame"])
    return group | {"per_frame": rows}


def _blocks(
    gt: MotTable,
    pred: MotTable,
    iou: float,
    frames: np.ndarray | None,
    encode_rows: bool = False,
    with_events: bool = False,
) -> dict:
    """The metric blocks (the summary numbers as floats). With `frames`, TrackEval sees only those frames
    (renumbered, as TrackEval run on a sequence of just those frames); the group's block keeps the real frame
    numbers. `with_events` adds `events`: the error events of this CLEAR matching (`events.events_report`'s
    shape)."""
    group = in_background(_group_block, gt, pred, iou, encode_rows)
    if frames is not None:
        gt, pred = _on_frames(gt, frames, True), _on_frames(pred, frames, True)
    trackeval, pairs = trackeval_metrics_and_pairs(gt, pred, iou)
    events = _events(gt, pred, iou, frames, pairs) if with_events else None
    group = group()
    blocks = {
        "trackeval": {name: _floats(value) for name, value in trackeval.items()},
        "framewise": {name: float(value) for name, value in group["framewise"].items()},
        "losses": {name: float(value) for name, value in group["losses"].items()},
        "per_frame": group["per_frame"],  # numbers as they are (the contract model turns them into floats)
    }
    if with_events:
        blocks["events"] = events
    return blocks


def _events(gt: MotTable, pred: MotTable, iou: float, frames: np.ndarray | None, pairs) -> dict:
    from .events import clear_events, events_from_pairs, events_report_of

    events = events_from_pairs(gt, pred, pairs) if pairs is not None else clear_events(gt, pred, iou)
    return events_report_of(events, frames)


def evaluate(
    gt: MotTable,
    pred: MotTable,
    iou: float = 0.5,
    classes: list[int] | None = None,
    annotated_only: bool = False,
    annotated_frames: list[int] | None = None,
) -> MetricsReport:
    """The metrics report (see `evaluate_fields`)."""
    from shared.schemas import MetricsReport

    return MetricsReport(**evaluate_fields(gt, pred, iou, classes, annotated_only, annotated_frames))


def evaluate_fields(
    gt: MotTable,
    pred: MotTable,
    iou: float = 0.5,
    classes: list[int] | None = None,
    annotated_only: bool = False,
    annotated_frames: list[int] | None = None,
    encode_rows: bool = False,
    with_events: bool = False,
) -> dict[str, Any]:
    """The metrics report's fields (`MetricsReport(**fields)` is the report). `annotated_only` scores only frames that
    carry ground truth (`annotated_frames` names them explicitly), for ground truth annotated on a subset of
    frames; the default is TrackEval's (every frame counts). Ground truth with two or more classes adds
    `per_class` (a prediction's class is its 8th column); class-agnostic predictions (-1) get a note instead.
    `encode_rows`: the top-level per-frame rows' JSON is made beside TrackEval's kernel, for `report_json`.
    `with_events`: also `events`, the error events of the top-level CLEAR matching (not part of the report:
    the caller takes it out)."""
    if not 0.0 < iou <= 1.0:
        raise InputError(f"IoU threshold must be in (0, 1], got {iou}", field="iou")
    frames, scope = None, "all"
    if annotated_frames:
        frames, scope = np.asarray(sorted(set(annotated_frames)), dtype=np.int64), "annotated (listed)"
    elif annotated_only:  # of any class: a frame annotated without a ball says there was none (the per-class rule)
        frames, scope = np.unique(gt.frame), "annotated (frames with ground truth)"
    gt = select_classes(gt, classes, is_prediction=False)
    pred = select_classes(pred, classes, is_prediction=True)
    if frames is not None:
        gt, pred = _on_frames(gt, frames, False), _on_frames(pred, frames, False)
        scope += f": {len(frames)} frames"
    notes = []
    per_class = None
    gt_classes = sorted(set(gt.cls.tolist()) - {-1})
    if len(gt_classes) >= 2:
        if len(pred) and (pred.cls < 0).all():
            notes.append("per_class left out: the predictions carry no class (8th column -1, a class-agnostic "
                         "tracker); every class is scored together")  # fmt: skip
        else:
            per_class = {class_name(c): _blocks(gt.select(gt.cls == c), pred.select(pred.cls == c), iou, frames)
                         for c in gt_classes}  # fmt: skip
    blocks = _blocks(gt, pred, iou, frames, encode_rows, with_events)
    return {"iou_threshold": float(iou), "classes": classes, **blocks, "per_class": per_class, "frames": scope,
            "notes": notes}  # fmt: skip


def _floats(value):
    return [float(v) for v in value] if isinstance(value, list) else float(value)


def _nulls(value):
    """NaN and infinities as None, as the contract model writes them (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {name: _nulls(v) for name, v in value.items()}
    if isinstance(value, list):
        return [_nulls(v) for v in value]
    return value


def _dumps(value) -> str:
    """Compact JSON through the C encoder (`indent` would select the pure-Python one: ~50 ms for 5000
    per-frame rows); NaN and infinities, rare, as None."""
    if isinstance(value, _EncodedRows):
        return value.text
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(_nulls(value), separators=(",", ":"))


def report_json(fields: dict[str, Any], lines: bool = True) -> str:
    """The metrics JSON of `evaluate_fields`, the document `MetricsReport.model_dump_json` writes; with
    `lines`, each top-level field on a line of its own."""
    if not lines:
        return _dumps(fields)
    return "{\n" + ",\n".join(f" {json.dumps(name)}: {_dumps(value)}" for name, value in fields.items()) + "\n}"


def sweep(gt: MotTable, pred: MotTable, thresholds=None, classes: list[int] | None = None) -> list[dict[str, Any]]:
    """The fields of an evaluation at several IoU thresholds (default 0.3, 0.35, ..., 0.9)."""
    values = thresholds if thresholds is not None else np.round(np.arange(0.3, 0.901, 0.05), 2).tolist()
    return [evaluate_fields(gt, pred, float(t), classes) for t in values]
