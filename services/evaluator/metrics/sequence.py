"""One sequence as TrackEval sees it: per-frame GT/tracker ids (relabelled 0..n-1) and IoU matrices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.errors import InputError
from shared.formats.mot_txt import MotTable

EPS = np.finfo(float).eps


def box_iou(gt_xywh: np.ndarray, trk_xywh: np.ndarray) -> np.ndarray:
    """IoU exactly as TrackEval computes it (x2 = x + w first; degenerate boxes give 0)."""
    a = gt_xywh.copy()
    b = trk_xywh.copy()
    a[:, 2:] += a[:, :2]
    b[:, 2:] += b[:, :2]
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.maximum(hi[..., 0] - lo[..., 0], 0) * np.maximum(hi[..., 1] - lo[..., 1], 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    inter[area_a <= EPS, :] = 0
    inter[:, area_b <= EPS] = 0
    inter[union <= EPS] = 0
    union[union <= EPS] = 1
    return inter / union


@dataclass
class Sequence:
    num_timesteps: int
    gt_ids: list[np.ndarray]  # per frame, relabelled ids in file row order
    trk_ids: list[np.ndarray]
    similarity: list[np.ndarray]  # per frame, (n_gt, n_trk) IoU
    num_gt_ids: int
    num_trk_ids: int
    num_gt_dets: int
    num_trk_dets: int


def _per_frame(table: MotTable, num_timesteps: int, source: str) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """Row indices per frame (file order kept), ids relabelled in ascending order."""
    if len(table) and (table.id < 0).any():
        row = int(np.flatnonzero(table.id < 0)[0])
        raise InputError(f"negative id {int(table.id[row])} in frame {int(table.frame[row])}", source=source)
    unique_ids, relabelled = np.unique(table.id, return_inverse=True)
    order = np.argsort(table.frame, kind="stable")
    bounds = np.searchsorted(table.frame[order], np.arange(1, num_timesteps + 2))
    rows = [order[bounds[t] : bounds[t + 1]] for t in range(num_timesteps)]
    ids = [relabelled[r] for r in rows]
    for t, frame_ids in enumerate(ids):
        if len(frame_ids) != len(np.unique(frame_ids)):
            values, counts = np.unique(table.id[rows[t]], return_counts=True)
            raise InputError(f"id {int(values[counts > 1][0])} appears more than once in frame {t + 1}", source=source)
    return rows, ids, len(unique_ids)


def build_sequence(
    gt: MotTable, pred: MotTable, gt_source: str = "ground truth", pred_source: str = "tracks"
) -> Sequence:
    frames = [int(t.frame.max()) for t in (gt, pred) if len(t)]
    num_timesteps = max(frames) if frames else 0
    gt_rows, gt_ids, num_gt_ids = _per_frame(gt, num_timesteps, gt_source)
    trk_rows, trk_ids, num_trk_ids = _per_frame(pred, num_timesteps, pred_source)
    similarity = [box_iou(gt.boxes[g], pred.boxes[p]) for g, p in zip(gt_rows, trk_rows, strict=True)]
    return Sequence(num_timesteps, gt_ids, trk_ids, similarity, num_gt_ids, num_trk_ids, len(gt), len(pred))
