"""CLEAR MOT (MOTA, MOTP, IDSW, Frag, MT/PT/ML, ...) as TrackEval computes it."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from .sequence import EPS, Sequence

SUMMED = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MT", "PT", "ML", "Frag", "CLR_Frames", "MOTP_sum")


def clear_counts(seq: Sequence, threshold: float = 0.5) -> dict[str, float]:
    res = dict.fromkeys(SUMMED, 0)
    res["Frag"] = 0.0
    res["MOTP_sum"] = 0.0
    if seq.num_trk_dets == 0:
        res["CLR_FN"] = seq.num_gt_dets
        res["ML"] = seq.num_gt_ids
        return res
    if seq.num_gt_dets == 0:
        res["CLR_FP"] = seq.num_trk_dets
        res["ML"] = seq.num_gt_ids
        return res
    n = seq.num_gt_ids
    present = np.zeros(n)
    matched = np.zeros(n)
    frag_starts = np.zeros(n)
    prev_tracker = np.full(n, np.nan)  # last tracker ever matched
    prev_step_tracker = np.full(n, np.nan)  # tracker matched in the last processed frame
    for gt_ids, trk_ids, sim in zip(seq.gt_ids, seq.trk_ids, seq.similarity, strict=True):
        if len(gt_ids) == 0:
            res["CLR_FP"] += len(trk_ids)
            continue
        if len(trk_ids) == 0:
            res["CLR_FN"] += len(gt_ids)
            present[gt_ids] += 1
            continue
        score = 1000 * (trk_ids[None, :] == prev_step_tracker[gt_ids[:, None]]) + sim
        score[sim < threshold - EPS] = 0
        rows, cols = linear_sum_assignment(-score)
        keep = score[rows, cols] > 0 + EPS
        rows, cols = rows[keep], cols[keep]
        matched_gt, matched_trk = gt_ids[rows], trk_ids[cols]
        earlier = prev_tracker[matched_gt]
        res["IDSW"] += int(np.sum(~np.isnan(earlier) & (matched_trk != earlier)))
        present[gt_ids] += 1
        matched[matched_gt] += 1
        was_untracked = np.isnan(prev_step_tracker)
        prev_tracker[matched_gt] = matched_trk
        prev_step_tracker[:] = np.nan
        prev_step_tracker[matched_gt] = matched_trk
        frag_starts += was_untracked & ~np.isnan(prev_step_tracker)
        m = len(matched_gt)
        res["CLR_TP"] += m
        res["CLR_FN"] += len(gt_ids) - m
        res["CLR_FP"] += len(trk_ids) - m
        if m > 0:
            res["MOTP_sum"] += sum(sim[rows, cols])  # builtin sum: TrackEval's order of additions
    res["CLR_Frames"] = seq.num_timesteps
    ratio = matched[present > 0] / present[present > 0]
    res["MT"] = int(np.sum(ratio > 0.8))
    res["PT"] = int(np.sum(ratio >= 0.2)) - res["MT"]
    res["ML"] = n - res["MT"] - res["PT"]
    res["Frag"] = float(np.sum(frag_starts[frag_starts > 0] - 1))
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
