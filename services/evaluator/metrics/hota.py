"""HOTA (DetA, AssA, LocA, DetRe/DetPr, AssRe/AssPr, OWTA) over 19 alphas, as TrackEval computes it."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .sequence import EPS, Sequence

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


def hota_sequence(seq: Sequence) -> dict[str, np.ndarray]:
    """Per-sequence HOTA arrays (one value per alpha)."""
    k = len(ALPHAS)
    res = {name: np.zeros(k) for name in ("HOTA_TP", "HOTA_FN", "HOTA_FP", "AssA", "AssRe", "AssPr", "LocA")}
    if seq.num_trk_dets == 0 or seq.num_gt_dets == 0:
        res["HOTA_FN"] = seq.num_gt_dets * np.ones(k) if seq.num_trk_dets == 0 else res["HOTA_FN"]
        res["HOTA_FP"] = seq.num_trk_dets * np.ones(k) if seq.num_trk_dets else res["HOTA_FP"]
        res["LocA"] = np.ones(k)
        return _final(res)
    potential = np.zeros((seq.num_gt_ids, seq.num_trk_ids))
    gt_count = np.zeros((seq.num_gt_ids, 1))
    trk_count = np.zeros((1, seq.num_trk_ids))
    for gt_ids, trk_ids, sim in zip(seq.gt_ids, seq.trk_ids, seq.similarity, strict=True):
        denom = sim.sum(0)[None, :] + sim.sum(1)[:, None] - sim
        sim_iou = np.zeros_like(sim)
        mask = denom > 0 + EPS
        sim_iou[mask] = sim[mask] / denom[mask]
        potential[gt_ids[:, None], trk_ids[None, :]] += sim_iou
        gt_count[gt_ids] += 1
        trk_count[0, trk_ids] += 1
    alignment = potential / (gt_count + trk_count - potential)
    matches = [np.zeros_like(potential) for _ in ALPHAS]
    for gt_ids, trk_ids, sim in zip(seq.gt_ids, seq.trk_ids, seq.similarity, strict=True):
        if len(gt_ids) == 0:
            res["HOTA_FP"] += len(trk_ids)
            continue
        if len(trk_ids) == 0:
            res["HOTA_FN"] += len(gt_ids)
            continue
        rows, cols = linear_sum_assignment(-(alignment[gt_ids[:, None], trk_ids[None, :]] * sim))
        matched_sim = sim[rows, cols]
        for a, alpha in enumerate(ALPHAS):
            keep = matched_sim >= alpha - EPS
            m = int(keep.sum())
            res["HOTA_TP"][a] += m
            res["HOTA_FN"][a] += len(gt_ids) - m
            res["HOTA_FP"][a] += len(trk_ids) - m
            if m > 0:
                res["LocA"][a] += sum(matched_sim[keep])
                matches[a][gt_ids[rows[keep]], trk_ids[cols[keep]]] += 1
    for a in range(k):
        count = matches[a]
        tp = np.maximum(1, res["HOTA_TP"][a])
        res["AssA"][a] = np.sum(count * (count / np.maximum(1, gt_count + trk_count - count))) / tp
        res["AssRe"][a] = np.sum(count * (count / np.maximum(1, gt_count))) / tp
        res["AssPr"][a] = np.sum(count * (count / np.maximum(1, trk_count))) / tp
    res["LocA"] = np.maximum(1e-10, res["LocA"]) / np.maximum(1e-10, res["HOTA_TP"])
    return _final(res)


def hota_combined(res: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TrackEval's COMBINED_SEQ step for one sequence (association weighted by HOTA_TP)."""
    out = {name: res[name] for name in ("HOTA_TP", "HOTA_FN", "HOTA_FP")}
    for name in ("AssRe", "AssPr", "AssA"):
        out[name] = sum([res[name] * res["HOTA_TP"]]) / np.maximum(1.0, out["HOTA_TP"])
    out["LocA"] = np.maximum(1e-10, sum([res["LocA"] * res["HOTA_TP"]])) / np.maximum(1e-10, out["HOTA_TP"])
    return _final(out)
