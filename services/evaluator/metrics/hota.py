"""HOTA (DetA, AssA, LocA, DetRe/DetPr, AssRe/AssPr, OWTA) over 19 alphas, as TrackEval computes it."""

from __future__ import annotations

import numpy as np

from .sequence import EPS, Chunk, Sequence, frame_matching, sequential_row_sums

ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's exact values (not k * 0.05)
ARRAYS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA", "OWTA")


def _final(res: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    tp, fn, fp = res["HOTA_TP"], res["HOTA_FN"], res["HOTA_FP"]
    res["DetRe"] = tp / np.maximum(1, tp + fn)
    res["DetPr"] = tp / np.maximum(1, tp + fp)
    res["DetA"] = tp / np.maximum(1, tp + fn + fp)
    res["HOTA"] = np.sqrt(res["DetA"] * res["AssA"])
    res["OWTA"] = np.sqrt(res["DetRe"] * res["AssA"])
    return res


def _row_sums_by_width(chunk: Chunk) -> np.ndarray:
    """Each frame's IoU row sums over exactly its own tracker columns.

    numpy sums a row pairwise, and the pairing depends on the row's length: frames are
    grouped by tracker count so every row is summed as TrackEval sums it.
    """
    sums = np.zeros(chunk.gt_ids.shape)
    for width in np.unique(chunk.n_trk):
        if width == 0:
            continue
        frames = np.flatnonzero(chunk.n_trk == width)
        sums[frames] = np.ascontiguousarray(chunk.sim[frames][:, :, :width]).sum(axis=2)
    return sums


def _alignment(seq: Sequence) -> np.ndarray:
    """Global alignment score A = potential / (gt_count + trk_count - potential)."""
    cells, weights = [], []
    for chunk in seq.chunks:
        denom = chunk.sim.sum(axis=1)[:, None, :] + _row_sums_by_width(chunk)[:, :, None] - chunk.sim
        sim_iou = np.divide(chunk.sim, denom, out=np.zeros_like(chunk.sim), where=denom > 0 + EPS)
        c, g, p = np.nonzero(sim_iou)  # zeros add nothing; frame order is kept for the summation
        cells.append(chunk.gt_ids[c, g] * seq.num_trk_ids + chunk.trk_ids[c, p])
        weights.append(sim_iou[c, g, p])
    size = seq.num_gt_ids * seq.num_trk_ids
    potential = np.bincount(np.concatenate(cells), np.concatenate(weights), minlength=size) if cells else np.zeros(size)
    potential = potential.reshape(seq.num_gt_ids, seq.num_trk_ids)
    return potential / (seq.gt_count[:, None] + seq.trk_count[None, :] - potential)


def assignment_by_frame(chunk: Chunk, score: np.ndarray) -> np.ndarray:
    """(C, G) tracker column matched to each GT row (-1: none), positive-score pairs only."""
    positive = score > 0
    match = np.where(positive.any(axis=2), positive.argmax(axis=2), -1)
    for c in np.flatnonzero(~frame_matching(chunk, positive)):
        g, p = int(chunk.n_gt[c]), int(chunk.n_trk[c])
        from scipy.optimize import linear_sum_assignment  # only the numpy path needs scipy

        rows, cols = linear_sum_assignment(-score[c, :g, :p])
        keep = score[c, rows, cols] > 0
        match[c] = -1
        match[c, rows[keep]] = cols[keep]
    return match


def hota_sequence(seq: Sequence) -> dict[str, np.ndarray]:
    """Per-sequence HOTA arrays (one value per alpha)."""
    k = len(ALPHAS)
    if seq.num_trk_dets == 0 or seq.num_gt_dets == 0:
        return hota_without_matches(seq)
    alignment = _alignment(seq)
    thresholds = (ALPHAS - EPS)[:, None, None]
    frame_loc, cells, tp = [], [[] for _ in ALPHAS], np.zeros(k)
    for chunk in seq.chunks:
        valid = chunk.valid
        score = np.where(valid, alignment[chunk.gt_ids.clip(0)[:, :, None], chunk.trk_ids.clip(0)[:, None, :]], 0)
        match = assignment_by_frame(chunk, score * chunk.sim)
        c, g = np.nonzero(match >= 0)
        matched_sim = np.zeros(match.shape)
        matched_sim[c, g] = chunk.sim[c, g, match[c, g]]
        keep = (match >= 0)[None] & (matched_sim[None] >= thresholds)  # (alpha, C, G)
        tp += keep.sum(axis=(1, 2))
        frame_loc.append(sequential_row_sums(np.where(keep, matched_sim[None], 0.0)))  # (alpha, C)
        pair = chunk.gt_ids[c, g] * seq.num_trk_ids + chunk.trk_ids[c, match[c, g]]
        for a in range(k):
            cells[a].append(pair[keep[a, c, g]])
    counts = np.stack(
        [np.bincount(np.concatenate(cells[a]), minlength=alignment.size).reshape(alignment.shape) for a in range(k)]
    ).astype(float)
    loc_sums = sequential_row_sums(np.concatenate(frame_loc, axis=1))  # frame after frame, as TrackEval adds
    return hota_from_matches(seq, tp, loc_sums, counts)


def hota_without_matches(seq: Sequence) -> dict[str, np.ndarray]:
    """TrackEval's branch for a sequence with no GT or no tracker rows."""
    k = len(ALPHAS)
    res = {name: np.zeros(k) for name in ("HOTA_TP", "HOTA_FN", "HOTA_FP", "AssA", "AssRe", "AssPr", "LocA")}
    res["HOTA_FN"] = seq.num_gt_dets * np.ones(k) if seq.num_trk_dets == 0 else res["HOTA_FN"]
    res["HOTA_FP"] = seq.num_trk_dets * np.ones(k) if seq.num_trk_dets else res["HOTA_FP"]
    res["LocA"] = np.ones(k)
    return _final(res)


def hota_from_matches(seq: Sequence, tp: np.ndarray, loc_sums: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    """HOTA arrays from per-alpha match counts: TP, summed IoU of matches, (alpha, gt id, tracker id) counts."""
    k = len(ALPHAS)
    res = {"HOTA_TP": tp, "HOTA_FN": seq.num_gt_dets - tp, "HOTA_FP": seq.num_trk_dets - tp}
    res |= {name: np.zeros(k) for name in ("AssA", "AssRe", "AssPr")}
    gt_count, trk_count = seq.gt_count[:, None], seq.trk_count[None, :]
    for a in range(k):
        count = counts[a]
        denom = np.maximum(1, tp[a])
        res["AssA"][a] = np.sum(count * (count / np.maximum(1, gt_count + trk_count - count))) / denom
        res["AssRe"][a] = np.sum(count * (count / np.maximum(1, gt_count))) / denom
        res["AssPr"][a] = np.sum(count * (count / np.maximum(1, trk_count))) / denom
    res["LocA"] = np.maximum(1e-10, loc_sums) / np.maximum(1e-10, tp)
    return _final(res)


def hota_combined(res: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TrackEval's COMBINED_SEQ step for one sequence (association weighted by HOTA_TP)."""
    out = {name: res[name] for name in ("HOTA_TP", "HOTA_FN", "HOTA_FP")}
    for name in ("AssRe", "AssPr", "AssA"):
        out[name] = sum([res[name] * res["HOTA_TP"]]) / np.maximum(1.0, out["HOTA_TP"])
    out["LocA"] = np.maximum(1e-10, sum([res["LocA"] * res["HOTA_TP"]])) / np.maximum(1e-10, out["HOTA_TP"])
    return _final(out)
