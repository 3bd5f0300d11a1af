"""The group's own framewise metrics and losses, reproducing their analysis script exactly.

Rules (see ../shared/reference/eval/FRAMEWISE_METRICS.md): only frames present in both GT
and predictions count; per frame a greedy matching (pairs with IoU >= threshold, no epsilon,
taken in descending (iou, gt row, pred row) order); `mota` is their current definition
(no ID switches, i.e. MODA on common frames); `id_switches`, `mota_with_idsw`,
`tracking_loss` and `combined_loss_tracking` follow their earlier version.

Why the standard block is the one to report: this matching is greedy rather than optimal,
frames missing from either file are dropped silently (their FN/FP vanish), the current
MOTA ignores identity, and `fragmentation_ratio` counts ids, not track breaks. TrackEval's
HOTA/MOTA/IDF1 have none of these blind spots; these numbers are kept so results stay
comparable with the group's earlier reports.
"""

from __future__ import annotations

import numpy as np

from shared.formats.mot_txt import MotTable


def _iou_xyxy(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Their IoU on (x1, y1, x2, y2) boxes built as x + w; 0 where the union is 0."""
    g = np.column_stack([gt[:, 0], gt[:, 1], gt[:, 0] + gt[:, 2], gt[:, 1] + gt[:, 3]])
    p = np.column_stack([pred[:, 0], pred[:, 1], pred[:, 0] + pred[:, 2], pred[:, 1] + pred[:, 3]])
    dx = np.minimum(g[:, None, 2], p[None, :, 2]) - np.maximum(g[:, None, 0], p[None, :, 0])
    dy = np.minimum(g[:, None, 3], p[None, :, 3]) - np.maximum(g[:, None, 1], p[None, :, 1])
    inter = np.maximum(0, dx) * np.maximum(0, dy)
    area_g = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    area_p = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    union = area_g[:, None] + area_p[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _greedy(iou: np.ndarray, threshold: float) -> list[tuple[float, int, int]]:
    rows, cols = np.nonzero(iou >= threshold)
    pairs = sorted(zip(iou[rows, cols].tolist(), rows.tolist(), cols.tolist(), strict=True), reverse=True)
    used_g, used_p, accepted = set(), set(), []
    for value, g, p in pairs:
        if g not in used_g and p not in used_p:
            used_g.add(g)
            used_p.add(p)
            accepted.append((value, g, p))
    return accepted


def _matches_numpy(gt: MotTable, pred: MotTable, g_rows_by_frame, p_rows_by_frame, threshold: float):
    """(tp per frame, accepted IoUs in order, id switches): the group's script, frame by frame."""
    tps, ious, id_switches = [], [], 0
    previous: dict[int, int] = {}  # gt id -> pred id in the preceding common frame (old version)
    for g_rows, p_rows in zip(g_rows_by_frame, p_rows_by_frame, strict=True):
        accepted = _greedy(_iou_xyxy(gt.boxes[g_rows], pred.boxes[p_rows]), threshold)
        current = {}
        for value, g, p in accepted:
            ious.append(value)
            gid, pid = int(gt.id[g_rows[g]]), int(pred.id[p_rows[p]])
            if gid in previous and previous[gid] != pid:
                id_switches += 1
            current[gid] = pid
        previous = current
        tps.append(len(accepted))
    return tps, ious, id_switches


def _matches_compiled(gt, pred, gt_rows, pred_rows, gt_bounds, pred_bounds, threshold):
    """The same as `_matches_numpy` in one compiled pass (services/evaluator/metrics/_kernels.c)."""
    from .metrics.compiled import _kernels

    frames = len(gt_bounds) - 1
    tps = np.zeros(frames, dtype=np.int64)
    ious = np.empty(max(1, int(np.minimum(np.diff(gt_bounds), np.diff(pred_bounds)).sum())), dtype=np.float64)
    count, id_switches = _kernels.framewise(
        np.ascontiguousarray(gt.id[gt_rows], dtype=np.int64), np.ascontiguousarray(gt.boxes[gt_rows]),
        np.ascontiguousarray(pred.id[pred_rows], dtype=np.int64), np.ascontiguousarray(pred.boxes[pred_rows]),
        gt_bounds, pred_bounds, float(threshold), tps, ious,
    )  # fmt: skip
    return tps.tolist(), ious[:count], int(id_switches)


def framewise_metrics(gt: MotTable, pred: MotTable, threshold: float = 0.5, backend: str | None = None) -> dict:
    """{'framewise': {...}, 'losses': {...}, 'per_frame': [...]} as the group's script computes them.
    `backend` "compiled" (the default when the C kernels are built) or "numpy": the same bits."""
    from .metrics.compiled import available
    from .metrics.sequence import frame_order

    common = np.intersect1d(np.unique(gt.frame), np.unique(pred.frame))
    gt_order, pred_order = frame_order(gt.frame), frame_order(pred.frame)
    gt_bounds = np.searchsorted(gt.frame[gt_order], np.stack([common, common + 1]))
    pred_bounds = np.searchsorted(pred.frame[pred_order], np.stack([common, common + 1]))
    g_rows_by_frame = [gt_order[a:b] for a, b in gt_bounds.T.tolist()]
    p_rows_by_frame = [pred_order[a:b] for a, b in pred_bounds.T.tolist()]
    if (backend or ("compiled" if available() else "numpy")) == "compiled" and len(common):
        gt_rows, pred_rows = np.concatenate(g_rows_by_frame), np.concatenate(p_rows_by_frame)
        counts = [np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
                  for rows in (g_rows_by_frame, p_rows_by_frame)]  # fmt: skip
        tps, ious, id_switches = _matches_compiled(gt, pred, gt_rows, pred_rows, *counts, threshold)
    else:
        tps, ious, id_switches = _matches_numpy(gt, pred, g_rows_by_frame, p_rows_by_frame, threshold)
    pred_ids = set(np.unique(pred.id[np.concatenate(p_rows_by_frame)]).tolist()) if len(common) else set()
    tp_total = fp_total = fn_total = n_gt_total = n_pred_total = 0
    per_frame = []
    for frame, g_rows, p_rows, tp in zip(common.tolist(), g_rows_by_frame, p_rows_by_frame, tps, strict=True):
        n_gt, n_pred = len(g_rows), len(p_rows)
        precision, recall = tp / n_pred, tp / n_gt
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0
        per_frame.append(
            {"frame": frame, "gt": n_gt, "pred": n_pred, "tp": tp, "fp": n_pred - tp, "fn": n_gt - tp,
             "precision": precision, "recall": recall, "f1": f1}
        )  # fmt: skip
        tp_total += tp
        fp_total += n_pred - tp
        fn_total += n_gt - tp
        n_gt_total += n_gt
        n_pred_total += n_pred
    frames = len(common)
    precision = tp_total / (tp_total + fp_total) if tp_total + fp_total > 0 else 0
    recall = tp_total / (tp_total + fn_total) if tp_total + fn_total > 0 else 0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0
    mota = 1 - (fn_total + fp_total) / n_gt_total if n_gt_total > 0 else 0
    mota_idsw = 1 - (fn_total + fp_total + id_switches) / n_gt_total if n_gt_total > 0 else 0
    avg_iou = float(np.mean(ious)) if len(ious) else 0
    avg_pred = n_pred_total / frames if frames else 0
    ratio = len(pred_ids) / avg_pred if avg_pred > 0 else 0
    framewise = {
        "total_frames": frames, "total_gt_detections": n_gt_total, "total_pred_detections": n_pred_total,
        "true_positives": tp_total, "false_positives": fp_total, "false_negatives": fn_total,
        "precision": precision, "recall": recall, "f1_score": f1, "mota": mota, "mota_with_idsw": mota_idsw,
        "id_switches": id_switches, "avg_iou": avg_iou, "unique_pred_ids": len(pred_ids),
        "avg_pred_per_frame": avg_pred, "fragmentation_ratio": ratio, "iou_threshold": threshold,
    }  # fmt: skip
    if frames == 0:  # their script returns no metrics and all-zero losses
        return {"framewise": framewise, "losses": dict.fromkeys(LOSSES, 0.0), "per_frame": []}
    detection_loss = (1 - precision) + (1 - recall)
    iou_loss = 1 - avg_iou
    fragmentation_loss = 1 - 1 / ratio if ratio > 1 else 0.0
    tracking_loss = id_switches / n_gt_total if n_gt_total > 0 else 0
    losses = {
        "detection_loss": detection_loss,
        "iou_loss": iou_loss,
        "tracking_loss": tracking_loss,
        "fragmentation_loss": fragmentation_loss,
        "mota_loss": 1 - mota,
        "combined_loss": 0.4 * detection_loss + 0.3 * iou_loss + 0.3 * fragmentation_loss,
        "combined_loss_tracking": 0.4 * detection_loss + 0.3 * iou_loss + 0.3 * tracking_loss,
    }
    return {"framewise": framewise, "losses": losses, "per_frame": per_frame}


LOSSES = (
    "detection_loss",
    "iou_loss",
    "tracking_loss",
    "fragmentation_loss",
    "mota_loss",
    "combined_loss",
    "combined_loss_tracking",
)
