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

Two ways to the same events: `events_from_pairs` reads the matching the compiled kernel made while it
computed the metrics (what `motpipe eval --events` uses: no second pass), `clear_events` runs the numpy
CLEAR matching on its own (the API's events and builds without the kernel); a test holds them equal.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.formats.mot_txt import MotTable

from .evaluate import _on_frames, select_classes
from .metrics import compiled
from .metrics.clear import _matches
from .metrics.report import ClearPairs
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
    listed = {key: value[order].tolist() for key, value in cols.items() if key != "score"}
    null = -(2**62)
    for key in ("gt_id", "pred_id", "prev_pred_id"):
        listed[key] = [None if v == null else v for v in listed[key]]
    listed["kind"] = [KINDS[k] for k in listed["kind"]]
    rows = zip(*listed.values(), strict=True)
    out = [{"frame": frame, "kind": kind, "class": cls, "gt_id": gt_id, "pred_id": pred_id, "prev_pred_id": prev,
            "box": box} for frame, kind, cls, gt_id, pred_id, prev, box in rows]  # fmt: skip
    score = cols["score"][order]
    scored = np.flatnonzero(score == score)  # tracker rows' scores (NaN for GT rows)
    for index, value in zip(scored.tolist(), score[scored].tolist(), strict=True):
        out[index]["score"] = value
    return out


def _from_matches(gt, pred, gt_rows, pred_rows, rank, fn_rows, fp_rows) -> list[dict[str, Any]]:
    """The events of a CLEAR matching given as its matched (GT row, tracker row) pairs in time order, each
    pair's rank among the processed frames (frames with GT and tracker rows: a gap in ranks is an
    interruption), and the unmatched rows of each side."""
    gt_ids, pred_ids = gt.id[gt_rows], pred.id[pred_rows]
    order = np.argsort(gt_ids, kind="stable")  # each GT id's matches in time order
    same_gt = gt_ids[order][1:] == gt_ids[order][:-1]
    switched = np.flatnonzero(same_gt & (pred_ids[order][1:] != pred_ids[order][:-1]))
    now, before = order[switched + 1], order[switched]
    resumed = order[np.flatnonzero(same_gt & (rank[order][1:] != rank[order][:-1] + 1)) + 1]  # a fragment restarts
    return _as_dicts([
        _rows(gt, fn_rows, KINDS.index("fn"), True),
        _rows(pred, fp_rows, KINDS.index("fp"), False),
        _rows(gt, gt_rows[now], KINDS.index("idsw"), True, pred_id=pred_ids[now], prev=pred_ids[before]),
        _rows(gt, gt_rows[resumed], KINDS.index("frag"), True, pred_id=pred_ids[resumed]),
    ])  # fmt: skip


def events_from_pairs(gt: MotTable, pred: MotTable, matching: ClearPairs) -> list[dict[str, Any]]:
    """The events of the matching the compiled kernel made for `trackeval_metrics_and_pairs(gt, pred)`."""
    (g_order, _, g_frame, _, n_gt, _), (p_order, *_, n_trk, _) = matching.gt_layout, matching.pred_layout
    matched = np.flatnonzero(matching.pairs >= 0)
    taken = np.zeros(len(pred), dtype=bool)
    taken[matching.pairs[matched]] = True
    rank_of_frame = np.cumsum((n_gt > 0) & (n_trk > 0)) - 1
    return _from_matches(
        gt, pred, g_order[matched], p_order[matching.pairs[matched]], rank_of_frame[g_frame[matched]],
        g_order[matching.pairs < 0], p_order[~taken],
    )  # fmt: skip


def clear_events(gt: MotTable, pred: MotTable, iou: float = 0.5) -> list[dict[str, Any]]:
    """Every FN, FP, IDSW and Frag event of CLEAR at `iou`, ordered by frame, kind, GT id, tracker id."""
    seq, g_layout, p_layout = build_sequence_and_layout(gt, pred)
    if seq.num_trk_dets == 0 or seq.num_gt_dets == 0:  # TrackEval's branch: nothing can match
        nothing = np.zeros(0, dtype=np.int64)
        return _from_matches(gt, pred, nothing, nothing, nothing, np.arange(len(gt)), np.arange(len(pred)))
    m_gt_row, m_pred_row, m_rank, fn_rows, fp_rows = [], [], [], [], []
    processed_before = 0
    solve = compiled.assign if compiled.available() else None
    for chunk, match in zip(seq.chunks, _matches(seq, iou, solve), strict=True):
        steps = chunk.start + np.arange(len(chunk.n_gt))
        c, g = np.nonzero(match >= 0)
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
    return _from_matches(
        gt, pred, np.concatenate(m_gt_row), np.concatenate(m_pred_row), np.concatenate(m_rank),
        np.concatenate(fn_rows), np.concatenate(fp_rows),
    )  # fmt: skip


def events_report_of(events: list[dict[str, Any]], frames: np.ndarray | None) -> dict[str, Any]:
    """`{"events", "counts"}`, with frame numbers back to the files' own when only `frames` were scored."""
    if frames is not None:
        for event in events:
            event["frame"] = int(frames[event["frame"] - 1])
    counts = {kind: 0 for kind in KINDS}
    for event in events:
        counts[event["kind"]] += 1
    return {"events": events, "counts": counts}


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
    if cls is not None:  # as `evaluate` does: class-agnostic predictions (-1) are kept whole
        gt, pred = select_classes(gt, [cls], False), select_classes(pred, [cls], True)
    if frames is not None:
        gt, pred = _on_frames(gt, frames, True), _on_frames(pred, frames, True)
    return events_report_of(clear_events(gt, pred, iou), frames)
