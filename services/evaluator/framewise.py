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


def _matches_numpy(gt: MotTable, pred: MotTable, gt_rows, pred_rows, gt_offsets, pred_offsets, threshold: float):
    """(tp per frame, accepted IoUs in order, id switches): the group's script, frame by frame."""
    tps, ious, id_switches = [], [], 0
    previous: dict[int, int] = {}  # gt id -> pred id in the preceding common frame (old version)
    for f in range(len(gt_offsets) - 1):
        g_rows = gt_rows[gt_offsets[f] : gt_offsets[f + 1]]
        p_rows = pred_rows[pred_offsets[f] : pred_offsets[f + 1]]
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
    return np.array(tps, dtype=np.int64), ious, id_switches


def _matches_compiled(gt, pred, gt_rows, pred_rows, gt_offsets, pred_offsets, threshold):
    """The same as `_matches_numpy` in one compiled pass (services/evaluator/metrics/_kernels.c)."""
    from .metrics.compiled import _kernels

    frames = len(gt_offsets) - 1
    tps = np.zeros(frames, dtype=np.int64)
    ious = np.empty(max(1, int(np.minimum(np.diff(gt_offsets), np.diff(pred_offsets)).sum())), dtype=np.float64)
    count, id_switches = _kernels.framewise(
        np.ascontiguousarray(gt.id[gt_rows], dtype=np.int64), np.ascontiguousarray(gt.boxes[gt_rows]),
        np.ascontiguousarray(pred.id[pred_rows], dtype=np.int64), np.ascontiguousarray(pred.boxes[pred_rows]),
        gt_offsets, pred_offsets, float(threshold), tps, ious,
    )  # fmt: skip
    return tps, ious[:count], int(id_switches)


def _common_frames(gt: MotTable, pred: MotTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frames in both files (ascending) and, for each gt and each pred row, its frame's index among
    them (-1 where the frame is not in both)."""
    from .metrics.sequence import relabel

    frames, index = relabel(np.concatenate([gt.frame, pred.frame]))
    in_gt, in_pred = np.zeros(len(frames), dtype=bool), np.zeros(len(frames), dtype=bool)
    in_gt[index[: len(gt)]] = True
    in_pred[index[len(gt) :]] = True
    both = in_gt & in_pred
    slot = np.where(both, np.cumsum(both) - 1, -1)[index]
    return frames[both], slot[: len(gt)], slot[len(gt) :]


def _rows_on(table: MotTable, slot: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows on the common frames, grouped by frame in file order, and each frame's offsets into them."""
    from .metrics.sequence import frame_order

    order = frame_order(table.frame)
    rows = order[slot[order] >= 0]
    offsets = np.zeros(frames + 1, dtype=np.int64)
    np.cumsum(np.bincount(slot[rows], minlength=frames), out=offsets[1:])
    return rows, offsets


def framewise_metrics(gt: MotTable, pred: MotTable, threshold: float = 0.5, backend: str | None = None) -> dict:
    """{'framewise': {...}, 'losses': {...}, 'per_frame': [...]} as the group's script computes them.
    `backend` "compiled" (the default when the C kernels are built) or "numpy": the same bits. Per-frame
    arithmetic runs on arrays (the same IEEE operations, in the same order, as the script's scalars)."""
    from .metrics.compiled import available
    from .metrics.sequence import relabel

    common, gt_slot, pred_slot = _common_frames(gt, pred)
    gt_rows, gt_offsets = _rows_on(gt, gt_slot, len(common))
    pred_rows, pred_offsets = _rows_on(pred, pred_slot, len(common))
    match = _matches_compiled if (backend or ("compiled" if available() else "numpy")) == "compiled" else _matches_numpy
    if len(common):
        tp, ious, id_switches = match(gt, pred, gt_rows, pred_rows, gt_offsets, pred_offsets, threshold)
    else:
        tp, ious, id_switches = np.zeros(0, dtype=np.int64), [], 0
    n_gt, n_pred = np.diff(gt_offsets), np.diff(pred_offsets)
    precisions, recalls = tp / n_pred, tp / n_gt
    with np.errstate(divide="ignore", invalid="ignore"):
        f1s = np.where(precisions + recalls > 0, 2 * precisions * recalls / (precisions + recalls), 0.0)
    columns = (common, n_gt, n_pred, tp, n_pred - tp, n_gt - tp, precisions, recalls, f1s)
    keys = ("frame", "gt", "pred", "tp", "fp", "fn", "precision", "recall", "f1")
    per_frame = [dict(zip(keys, row, strict=True)) for row in zip(*(c.tolist() for c in columns), strict=True)]
    tp_total = int(tp.sum())
    n_gt_total, n_pred_total = int(n_gt.sum()), int(n_pred.sum())
    fp_total, fn_total = n_pred_total - tp_total, n_gt_total - tp_total
    unique_pred_ids = len(relabel(pred.id[pred_rows])[0])
    frames = len(common)
    precision = tp_total / (tp_total + fp_total) if tp_total + fp_total > 0 else 0
    recall = tp_total / (tp_total + fn_total) if tp_total + fn_total > 0 else 0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0
    mota = 1 - (fn_total + fp_total) / n_gt_total if n_gt_total > 0 else 0
    mota_idsw = 1 - (fn_total + fp_total + id_switches) / n_gt_total if n_gt_total > 0 else 0
    avg_iou = float(np.mean(ious)) if len(ious) else 0
    avg_pred = n_pred_total / frames if frames else 0
    ratio = unique_pred_ids / avg_pred if avg_pred > 0 else 0
    framewise = {
        "total_frames": frames, "total_gt_detections": n_gt_total, "total_pred_detections": n_pred_total,
        "true_positives": tp_total, "false_positives": fp_total, "false_negatives": fn_total,
        "precision": precision, "recall": recall, "f1_score": f1, "mota": mota, "mota_with_idsw": mota_idsw,
        "id_switches": id_switches, "avg_iou": avg_iou, "unique_pred_ids": unique_pred_ids,
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
