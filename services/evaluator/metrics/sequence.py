"""One sequence as TrackEval sees it, laid out for vectorised metrics.

Ids are relabelled 0..n-1 in ascending order (as TrackEval does). Frames are grouped in
chunks; inside a chunk every frame's GT ids, tracker ids and IoU matrix are padded to the
chunk's largest counts, so the metrics run as a few array operations per chunk instead of
Python work per frame. Padding never enters a result: padded cells are masked out, and
per-frame sums that TrackEval computes in a particular order are recomputed in that order
(see `sequential_row_sums`), which keeps every value bit-identical to TrackEval's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.errors import InputError
from shared.formats.mot_txt import MotTable

EPS = np.finfo(float).eps
CHUNK_CELLS = 4_000_000  # padded IoU cells per chunk: bounds memory for crowded frames


@dataclass
class Chunk:
    start: int  # first frame index (0-based timestep) of the chunk
    n_gt: np.ndarray  # (C,) rows per frame
    n_trk: np.ndarray  # (C,)
    gt_ids: np.ndarray  # (C, G) relabelled ids, -1 where padded
    trk_ids: np.ndarray  # (C, P)
    sim: np.ndarray  # (C, G, P) IoU, 0 where padded

    @property
    def valid(self) -> np.ndarray:
        return (self.gt_ids[:, :, None] >= 0) & (self.trk_ids[:, None, :] >= 0)


@dataclass
class Sequence:
    num_timesteps: int
    num_gt_ids: int
    num_trk_ids: int
    num_gt_dets: int
    num_trk_dets: int
    gt_count: np.ndarray  # rows per GT id
    trk_count: np.ndarray  # rows per tracker id
    chunks: list[Chunk] = field(default_factory=list)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x,y,w,h boxes `a` (..., G, 4) against `b` (..., P, 4), exactly as TrackEval computes it.

    Same operations in the same order as TrackEval (x2 = x + w first, areas from the corners),
    written coordinate by coordinate with in-place updates to keep the temporaries few.
    """
    ax1, ay1, bx1, by1 = a[..., :, None, 0], a[..., :, None, 1], b[..., None, :, 0], b[..., None, :, 1]
    ax2, ay2 = ax1 + a[..., :, None, 2], ay1 + a[..., :, None, 3]
    bx2, by2 = bx1 + b[..., None, :, 2], by1 + b[..., None, :, 3]
    inter = np.minimum(ax2, bx2)
    inter -= np.maximum(ax1, bx1)
    np.maximum(inter, 0, out=inter)
    height = np.minimum(ay2, by2)
    height -= np.maximum(ay1, by1)
    np.maximum(height, 0, out=height)
    inter *= height
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    union = area_a + area_b
    union -= inter
    inter[(area_a <= EPS) | (area_b <= EPS) | (union <= EPS)] = 0
    union[union <= EPS] = 1
    inter /= union
    return inter


def sequential_row_sums(values: np.ndarray) -> np.ndarray:
    """Sum along the last axis strictly left to right (Python's `sum` over a frame's matches).

    Padding zeros at the end of a row do not change the sum; numpy's own `sum` would add
    in pairwise order and differ in the last bit. Short rows are summed column by column
    (vectorised over all rows), long ones with `cumsum`; both add in order.
    """
    if values.shape[-1] > 64:
        return np.cumsum(values, axis=-1)[..., -1]
    total = np.zeros(values.shape[:-1])
    for column in np.moveaxis(values, -1, 0):
        total += column
    return total


def frame_order(frames: np.ndarray) -> np.ndarray:
    """Row order by frame, file order kept inside a frame (a stable argsort); files written frame by frame are
    already in that order, which one pass checks instead of sorting."""
    if len(frames) < 2 or bool((frames[1:] >= frames[:-1]).all()):
        return np.arange(len(frames))
    return np.argsort(frames, kind="stable")


DENSE_CELLS = 1 << 25  # largest lookup table (entries) `relabel` uses instead of a sort


def relabel(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_inverse=True)` of integers: through a lookup table when they are
    non-negative and their range is small enough (O(n); ids and frame numbers almost always are), else a sort.
    The table is written only where values are, so a sparse range costs little memory."""
    top = int(values.max()) + 1 if len(values) else 0
    if top > max(DENSE_CELLS // 8, 16 * len(values)) or (len(values) and values.min() < 0):
        return np.unique(values, return_inverse=True)
    present = np.zeros(top, dtype=bool)
    present[values] = True
    distinct = np.flatnonzero(present)
    lookup = np.empty(top, dtype=np.int64)
    lookup[distinct] = np.arange(len(distinct))
    return distinct, lookup[values]


def _first_repeat(keys: np.ndarray) -> int | None:
    """A value that occurs twice in `keys`, or None. Keys of a file written frame by frame with ascending
    ids are already strictly ascending (one pass proves it); others get a stable sort, which is timsort,
    near-linear on the nearly sorted keys that files give."""
    if len(keys) < 2 or bool((keys[1:] > keys[:-1]).all()):
        return None
    sorted_keys = np.sort(keys, kind="stable")
    repeats = np.flatnonzero(np.diff(sorted_keys) == 0)
    return int(sorted_keys[repeats[0]]) if repeats.size else None


def _layout(table: MotTable, num_timesteps: int, source: str):
    """Relabelled ids, per-frame counts and each row's (frame index, position in frame)."""
    if len(table) and (table.id < 0).any():
        row = int(np.flatnonzero(table.id < 0)[0])
        raise InputError(f"negative id {int(table.id[row])} in frame {int(table.frame[row])}", source=source)
    unique_ids, relabelled = relabel(table.id)
    order = frame_order(table.frame)
    frame_index = table.frame[order] - 1
    counts = np.bincount(frame_index, minlength=num_timesteps)[:num_timesteps]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[frame_index]
    width = max(1, len(unique_ids))
    repeat = _first_repeat(frame_index * width + relabelled[order])
    if repeat is not None:
        frame, local = divmod(repeat, width)
        raise InputError(f"id {int(unique_ids[local])} appears more than once in frame {frame + 1}", source=source)
    return order, relabelled[order], frame_index, position, counts, len(unique_ids)


def _chunk_bounds(n_gt: np.ndarray, n_trk: np.ndarray) -> list[tuple[int, int]]:
    bounds, start, g_max, p_max = [], 0, 0, 0
    for t in range(len(n_gt)):
        g, p = max(g_max, int(n_gt[t])), max(p_max, int(n_trk[t]))
        if t > start and (t - start + 1) * max(1, g) * max(1, p) > CHUNK_CELLS:
            bounds.append((start, t))
            start, g, p = t, int(n_gt[t]), int(n_trk[t])
        g_max, p_max = g, p
    if len(n_gt):
        bounds.append((start, len(n_gt)))
    return bounds


def _padded(order, ids, frame_index, position, boxes, lo, hi, width):
    inside = (frame_index >= lo) & (frame_index < hi)
    id_pad = np.full((hi - lo, width), -1, dtype=np.int64)
    box_pad = np.zeros((hi - lo, width, 4))
    f, pos = frame_index[inside] - lo, position[inside]
    id_pad[f, pos] = ids[inside]
    box_pad[f, pos] = boxes[order[inside]]
    return id_pad, box_pad


Layout = tuple  # one table's (order, relabelled ids, frame index, position in frame, rows per frame, id count)


def lay_out(
    gt: MotTable, pred: MotTable, gt_source: str = "ground truth", pred_source: str = "tracks"
) -> tuple[Sequence, Layout, Layout]:
    """The sequence's counts (no chunks yet) and both tables grouped by frame."""
    frames = [int(t.frame.max()) for t in (gt, pred) if len(t)]
    steps = max(frames) if frames else 0
    g_layout = _layout(gt, steps, gt_source)
    p_layout = _layout(pred, steps, pred_source)
    g_count, p_count = (np.bincount(ids, minlength=n).astype(float) for _, ids, _, _, _, n in (g_layout, p_layout))
    seq = Sequence(steps, g_layout[5], p_layout[5], len(gt), len(pred), g_count, p_count)
    return seq, g_layout, p_layout


def build_sequence(
    gt: MotTable, pred: MotTable, gt_source: str = "ground truth", pred_source: str = "tracks"
) -> Sequence:
    return build_sequence_and_layout(gt, pred, gt_source, pred_source)[0]


def build_sequence_and_layout(
    gt: MotTable, pred: MotTable, gt_source: str = "ground truth", pred_source: str = "tracks"
) -> tuple[Sequence, Layout, Layout]:
    """The sequence with its chunks, and both tables' layouts (which row of a table each cell came from)."""
    seq, g_layout, p_layout = lay_out(gt, pred, gt_source, pred_source)
    (g_order, g_ids, g_frame, g_pos, n_gt, _), (p_order, p_ids, p_frame, p_pos, n_trk, _) = g_layout, p_layout
    for lo, hi in _chunk_bounds(n_gt, n_trk):
        g_width, p_width = int(n_gt[lo:hi].max(initial=0)), int(n_trk[lo:hi].max(initial=0))
        gt_ids, gt_boxes = _padded(g_order, g_ids, g_frame, g_pos, gt.boxes, lo, hi, g_width)
        trk_ids, trk_boxes = _padded(p_order, p_ids, p_frame, p_pos, pred.boxes, lo, hi, p_width)
        sim = box_iou(gt_boxes, trk_boxes)
        sim[(gt_ids[:, :, None] < 0) | (trk_ids[:, None, :] < 0)] = 0
        seq.chunks.append(Chunk(lo, n_gt[lo:hi], n_trk[lo:hi], gt_ids, trk_ids, sim))
    return seq, g_layout, p_layout


def frame_matching(chunk: Chunk, eligible: np.ndarray) -> np.ndarray:
    """Frames (chunk rows) where the eligible pairs already form a one-to-one matching.

    There the assignment solver can only return exactly those pairs (each is in the optimum
    and nothing else scores), so it need not run.
    """
    return (eligible.sum(axis=2) <= 1).all(axis=1) & (eligible.sum(axis=1) <= 1).all(axis=1)
