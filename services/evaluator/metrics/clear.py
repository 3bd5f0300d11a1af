"""CLEAR MOT (MOTA, MOTP, IDSW, Frag, MT/PT/ML, ...) as TrackEval computes it.

TrackEval walks the frames keeping, per GT id, the tracker matched in the previous processed
frame (a bonus of 1000 keeps such pairs together). That bonus can only change the
assignment where a frame's eligible pairs (IoU >= 0.5 - eps) compete; elsewhere the matching
is simply those pairs. So all frames are matched at once, and only competing frames are
solved one by one, in order, with the previous processed frame's matches.
"""

from __future__ import annotations

import math

import numpy as np

from .sequence import EPS, Sequence, frame_matching, sequential_row_sums

SUMMED = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames", "MOTP_sum")


def _matches(seq: Sequence, threshold: float, solve=None) -> list[np.ndarray]:
    """Per chunk, (C, G) tracker column matched to each GT row, -1 for none. `solve(cost) -> (rows, cols)`
    is the assignment solver (default scipy's `linear_sum_assignment`; the compiled `assign` gives the same
    pairs, ties included, without importing scipy)."""
    matches, competing = [], []
    for k, chunk in enumerate(seq.chunks):
        eligible = chunk.valid & (chunk.sim >= threshold - EPS)
        matches.append(np.where(eligible.any(axis=2), eligible.argmax(axis=2), -1))
        competing += [(k, int(c)) for c in np.flatnonzero(~frame_matching(chunk, eligible))]
    if not competing:
        return matches
    processed = [(k, c) for k, ch in enumerate(seq.chunks) for c in np.flatnonzero((ch.n_gt > 0) & (ch.n_trk > 0))]
    previous = {frame: processed[i - 1] for i, frame in enumerate(processed) if i > 0}
    for k, c in competing:  # in frame order, so each sees its predecessor's final matches
        chunk = seq.chunks[k]
        prev_step = np.full(seq.num_gt_ids, -1)
        if (k, c) in previous:
            pk, pc = previous[(k, c)]
            rows = np.flatnonzero(matches[pk][pc] >= 0)
            prev_step[seq.chunks[pk].gt_ids[pc, rows]] = seq.chunks[pk].trk_ids[pc, matches[pk][pc, rows]]
        g, p = int(chunk.n_gt[c]), int(chunk.n_trk[c])
        sim = chunk.sim[c, :g, :p]
        score = 1000 * (chunk.trk_ids[c, None, :p] == prev_step[chunk.gt_ids[c, :g, None]]) + sim
        score[sim < threshold - EPS] = 0
        if solve is None:
            from scipy.optimize import linear_sum_assignment as solve  # only the numpy path needs scipy

        rows, cols = solve(-score)
        keep = score[rows, cols] > 0 + EPS
        matches[k][c] = -1
        matches[k][c, rows[keep]] = cols[keep]
    return matches


def clear_counts(seq: Sequence, threshold: float = 0.5) -> dict[str, float]:
    if seq.num_trk_dets == 0 or seq.num_gt_dets == 0:
        return clear_without_matches(seq)
    frame, gt_id, trk_id, motp_parts, rank = [], [], [], [], []
    processed_before = 0
    for chunk, match in zip(seq.chunks, _matches(seq, threshold), strict=True):
        c, g = np.nonzero(match >= 0)
        frame.append(chunk.start + c)
        gt_id.append(chunk.gt_ids[c, g])
        trk_id.append(chunk.trk_ids[c, match[c, g]])
        matched_sim = np.zeros(match.shape)
        matched_sim[c, g] = chunk.sim[c, g, match[c, g]]
        motp_parts.append(sequential_row_sums(matched_sim))  # Python's sum over one frame's matches
        processed = (chunk.n_gt > 0) & (chunk.n_trk > 0)
        rank.append((processed_before + np.cumsum(processed) - 1)[c])  # index among processed frames
        processed_before += int(processed.sum())
    frame, gt_id, trk_id, rank = (np.concatenate(x) for x in (frame, gt_id, trk_id, rank))
    order = np.lexsort((frame, gt_id))  # each GT id's matches in time order
    same_gt = gt_id[order][1:] == gt_id[order][:-1]
    idsw = int(np.sum(same_gt & (trk_id[order][1:] != trk_id[order][:-1])))
    # a fragment starts where the GT id was not matched in the previous processed frame
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = ~(same_gt & (rank[order][1:] == rank[order][:-1] + 1))
    frag_starts = np.bincount(gt_id[order][starts], minlength=seq.num_gt_ids)
    matched = np.bincount(gt_id, minlength=seq.num_gt_ids)
    motp_sum = float(sequential_row_sums(np.concatenate(motp_parts)))  # frame after frame
    return clear_from_matches(seq, len(gt_id), idsw, motp_sum, matched, frag_starts)


def clear_without_matches(seq: Sequence) -> dict[str, float]:
    """TrackEval's branch for a sequence with no GT or no tracker rows."""
    res = dict.fromkeys(SUMMED, 0)
    res["Frag"] = 0.0
    res["MOTP_sum"] = 0.0
    res["CLR_FN"], res["CLR_FP"], res["ML"] = seq.num_gt_dets, seq.num_trk_dets, seq.num_gt_ids
    return res


def clear_from_matches(
    seq: Sequence, tp: int, idsw: int, motp_sum: float, matched: np.ndarray, frag_starts: np.ndarray
) -> dict[str, float]:
    """CLEAR counts from the matching's totals; `matched` and `frag_starts` are per GT id."""
    res: dict[str, float] = {"CLR_TP": tp, "CLR_FN": seq.num_gt_dets - tp, "CLR_FP": seq.num_trk_dets - tp}
    res["IDSW"] = idsw
    present = seq.gt_count
    ratio = matched[present > 0] / present[present > 0]
    res["MT"] = int(np.sum(ratio > 0.8))
    res["PT"] = int(np.sum(ratio >= 0.2)) - res["MT"]
    res["ML"] = seq.num_gt_ids - res["MT"] - res["PT"]
    res["Frag"] = float(np.sum(frag_starts[frag_starts > 0] - 1))
    res["MOTP_sum"] = motp_sum
    res["CLR_Frames"] = seq.num_timesteps
    return res


def clear_final(res: dict[str, float]) -> dict[str, float]:
    """Ratios from (summed) counts, as TrackEval's `_compute_final_fields`."""
    out = dict(res)
    tp, fn, fp, idsw = res["CLR_TP"], res["CLR_FN"], res["CLR_FP"], res["IDSW"]
    num_gt_ids = res["MT"] + res["ML"] + res["PT"]
    out["MTR"] = res["MT"] / max(1.0, num_gt_ids)
    out["MLR"] = res["ML"] / max(1.0, num_gt_ids)
    out["PTR"] = res["PT"] / max(1.0, num_gt_ids)
    out["CLR_Re"] = tp / max(1.0, tp + fn)
    out["CLR_Pr"] = tp / max(1.0, tp + fp)
    out["MODA"] = (tp - fp) / max(1.0, tp + fn)
    out["MOTA"] = (tp - fp - idsw) / max(1.0, tp + fn)
    out["MOTP"] = res["MOTP_sum"] / max(1.0, tp)
    out["sMOTA"] = (res["MOTP_sum"] - fp - idsw) / max(1.0, tp + fn)
    out["CLR_F1"] = tp / max(1.0, tp + 0.5 * fn + 0.5 * fp)
    out["FP_per_frame"] = fp / max(1.0, res["CLR_Frames"])
    safe_log_idsw = math.log10(idsw) if idsw > 0 else idsw
    out["MOTAL"] = (tp - fp - safe_log_idsw) / max(1.0, tp + fn)
    return out
