"""Where a tracker fails: every false negative, false positive, ID switch and fragmentation of TrackEval's
CLEAR matching, as events with frame, ids, class and box. Their counts equal TrackEval's `CLR_FN`, `CLR_FP`,
`IDSW` and `Frag` exactly, because they are read off the same matching the evaluator's CLEAR reproduces
(`metrics.clear._matches`: TrackEval's per-frame assignment with the 1000 bonus for last frame's pairs).

- fn: a GT row left unmatched (its GT id and box); fp: a tracker row left unmatched (its id, box, score);
- idsw: a GT id matched to another tracker id than at its previous match (`prev_pred_id` → `pred_id`),
  at the frame of the new match, with the GT box;
- frag: a GT id matched again after a processed frame without a match (TrackEval's fragment start),
  at that frame.
Ids and frames are the files' own. Per class (`cls`), both sides are reduced to that class first, as
TrackEval's per-class CLEAR is; with `frames` (annotated-only), only those frames count, as in `evaluate`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.formats.mot_txt import MotTable

from .evaluate import _on_frames
from .metrics import compiled
from .metrics.clear import _matches
from .metrics.sequence import build_sequence_and_layout

KINDS = ("fn", "fp", "idsw", "frag")


def _row_index(layout: tuple, frame_index: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Rows of the original table at (0-based frame index, position in that frame)."""
    order, counts = layout[0], layout[4]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return order[starts[frame_index] + position]


def _rows(table: MotTable, rows: np.ndarray, kind: int, gt_side: bool, pred_id=None, prev=None) -> dict:
    """Columns of a batch of events of one kind, all taken from `table`'s `rows`."""
    n = len(rows)
    none = np.full(n, -(2**62), dtype=np.int64)  # stands for null
    ids = table.id[rows]
    other = none if pred_id is None else pred_id  # a GT-side event's tracker id, when it has one
    return {"frame": table.frame[rows], "kind": np.full(n, kind), "class": table.cls[rows],
            "gt_id": ids if gt_side else none, "pred_id": other if gt_side else ids,
            "prev_pred_id": none if prev is None else prev, "box": table.boxes[rows],
            "score": table.conf[rows] if not gt_side else np.full(n, np.nan)}  # fmt: skip


def _as_dicts(batches: list[dict]) -> list[dict[str, Any]]:
    """One list of event dicts ordered by frame, kind, GT id, tracker id (built column-wise: ~20,000 events
    a second would otherwise go to Python's per-row work)."""
    if not batches:
        return []
    cols = {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}
    order = np.lexsort((cols["pred_id"], cols["gt_id"], cols["kind"], cols["frame"]))
    null = -(2**62)
    listed = {key: value[order].tolist() for key, value in cols.items()}
    out = []
    for frame, kind, cls, gt_id, pred_id, prev, box, score in zip(*listed.values(), strict=True):
        event = {"frame": frame, "kind": KINDS[kind], "class": cls, "gt_id": None if gt_id == null else gt_id,
                 "pred_id": None if pred_id == null else pred_id, "prev_pred_id": None if prev == null else prev,
                 "box": box}  # fmt: skip
        if score == score:  # a tracker row's score (NaN for GT rows)
            event["score"] = score
        out.append(event)
    return out


def clear_events(gt: MotTable, pred: MotTable, iou: float = 0.5) -> list[dict[str, Any]]:
    """Every FN, FP, IDSW and Frag event of CLEAR at `iou`, ordered by frame, kind, GT id, tracker id."""
    seq, g_layout, p_layout = build_sequence_and_layout(gt, pred)
    fn, fp = KINDS.index("fn"), KINDS.index("fp")
    if seq.num_trk_dets == 0 or seq.num_gt_dets == 0:  # TrackEval's branch: nothing can match
        return _as_dicts([_rows(gt, np.arange(len(gt)), fn, True), _rows(pred, np.arange(len(pred)), fp, False)])
    m_frame, m_gt_row, m_pred_row, m_rank, fn_rows, fp_rows = [], [], [], [], [], []
    processed_before = 0
    solve = compiled.assign if compiled.available() else None
    for chunk, match in zip(seq.chunks, _matches(seq, iou, solve), strict=True):
        steps = chunk.start + np.arange(len(chunk.n_gt))
        c, g = np.nonzero(match >= 0)
        m_frame.append(steps[c])
        m_gt_row.append(_row_index(g_layout, steps[c], g))
        m_pred_row.append(_row_index(p_layout, steps[c], match[c, g]))
        processed = (chunk.n_gt > 0) & (chunk.n_trk > 0)
        m_rank.append((processed_before + np.cumsum(processed) - 1)[c])
        processed_before += int(processed.sum())
        fc, fg = np.nonzero((chunk.gt_ids >= 0) & (match < 0))
        fn_rows.append(_row_index(g_layout, steps[fc], fg))
        taken = np.zeros(chunk.trk_ids.shape, dtype=bool)
        taken[c, match[c, g]] = True
        pc, pp = np.nonzero((chunk.trk_ids >= 0) & ~taken)
        fp_rows.append(_row_index(p_layout, steps[pc], pp))
    gt_rows, pred_rows = np.concatenate(m_gt_row), np.concatenate(m_pred_row)
    frame, rank = np.concatenate(m_frame), np.concatenate(m_rank)
    gt_ids, pred_ids = gt.id[gt_rows], pred.id[pred_rows]
    order = np.lexsort((frame, gt_ids))  # each GT id's matches in time order
    same_gt = gt_ids[order][1:] == gt_ids[order][:-1]
    switched = np.flatnonzero(same_gt & (pred_ids[order][1:] != pred_ids[order][:-1]))
    now, before = order[switched + 1], order[switched]
    resumed = order[np.flatnonzero(same_gt & (rank[order][1:] != rank[order][:-1] + 1)) + 1]  # a fragment restarts
    return _as_dicts([
        _rows(gt, np.concatenate(fn_rows), fn, True),
        _rows(pred, np.concatenate(fp_rows), fp, False),
        _rows(gt, gt_rows[now], KINDS.index("idsw"), True, pred_id=pred_ids[now], prev=pred_ids[before]),
        _rows(gt, gt_rows[resumed], KINDS.index("frag"), True, pred_id=pred_ids[resumed]),
    ])  # fmt: skip


def events_report(
    gt: MotTable,
    pred: MotTable,
    iou: float = 0.5,
    cls: int | None = None,
    annotated_only: bool = False,
    annotated_frames: list[int] | None = None,
) -> dict[str, Any]:
    """`{"events": [...], "counts": {"fn", "fp", "idsw", "frag"}}` of CLEAR on all classes (each event still
    naming its class) or on class `cls` alone; `annotated_only` scores only frames that carry ground truth
    (of any class, as `evaluate` chooses them; `annotated_frames` names them), frame numbers staying the
    files' own."""
    frames = None
    if annotated_frames:
        frames = np.asarray(sorted(set(annotated_frames)), dtype=np.int64)
    elif annotated_only:
        frames = np.unique(gt.frame)
    if cls is not None:
        gt, pred = gt.select(gt.cls == cls), pred.select(pred.cls == cls)
    if frames is not None:
        gt, pred = _on_frames(gt, frames, True), _on_frames(pred, frames, True)
    events = clear_events(gt, pred, iou)
    if frames is not None:  # back to the files' frame numbers
        for event in events:
            event["frame"] = int(frames[event["frame"] - 1])
    counts = {kind: 0 for kind in KINDS}
    for event in events:
        counts[event["kind"]] += 1
    return {"events": events, "counts": counts}
