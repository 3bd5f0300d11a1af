"""One evaluation: ground truth + tracks -> the metrics JSON of ARCHITECTURE.md (pure core)."""

from __future__ import annotations

import numpy as np

from shared.errors import InputError
from shared.formats.mot_txt import MotTable
from shared.schemas import MetricsReport

from .framewise import framewise_metrics
from .metrics import trackeval_metrics


def select_classes(table: MotTable, classes: list[int] | None, is_prediction: bool) -> MotTable:
    """Keep rows of the given classes. Predictions without class information (all -1) are kept whole."""
    if not classes:
        return table
    if is_prediction and len(table) and (table.cls < 0).all():
        return table
    return table.select(np.isin(table.cls, classes))


def evaluate(gt: MotTable, pred: MotTable, iou: float = 0.5, classes: list[int] | None = None) -> MetricsReport:
    if not 0.0 < iou <= 1.0:
        raise InputError(f"IoU threshold must be in (0, 1], got {iou}", field="iou")
    gt = select_classes(gt, classes, is_prediction=False)
    pred = select_classes(pred, classes, is_prediction=True)
    group = framewise_metrics(gt, pred, iou)
    return MetricsReport(
        iou_threshold=iou,
        classes=classes,
        trackeval=trackeval_metrics(gt, pred, iou),
        framewise=group["framewise"],
        losses=group["losses"],
        per_frame=group["per_frame"],
    )


def sweep(gt: MotTable, pred: MotTable, thresholds=None, classes: list[int] | None = None) -> list[MetricsReport]:
    """Evaluate at several IoU thresholds (default 0.3, 0.35, ..., 0.9)."""
    values = thresholds if thresholds is not None else np.round(np.arange(0.3, 0.901, 0.05), 2).tolist()
    return [evaluate(gt, pred, float(t), classes) for t in values]
