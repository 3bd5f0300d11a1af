"""Identity metrics (IDF1, IDP, IDR, IDTP/IDFN/IDFP) as TrackEval computes them."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .sequence import Sequence


def identity_counts(seq: Sequence, threshold: float = 0.5) -> dict[str, int]:
    if seq.num_trk_dets == 0 or seq.num_gt_dets == 0:
        return {"IDTP": 0, "IDFN": seq.num_gt_dets, "IDFP": seq.num_trk_dets}
    potential = np.zeros((seq.num_gt_ids, seq.num_trk_ids))
    for gt_ids, trk_ids, sim in zip(seq.gt_ids, seq.trk_ids, seq.similarity, strict=True):
        g, t = np.nonzero(sim >= threshold)  # no eps here, unlike CLEAR and HOTA
        np.add.at(potential, (gt_ids[g], trk_ids[t]), 1)
    # IDTP is the best one-to-one id mapping's overlap count: unique, whatever the tie-breaking
    rows, cols = linear_sum_assignment(-potential)
    idtp = int(potential[rows, cols].sum())
    return {"IDTP": idtp, "IDFN": seq.num_gt_dets - idtp, "IDFP": seq.num_trk_dets - idtp}


def identity_final(res: dict[str, int]) -> dict[str, float]:
    idtp, idfn, idfp = res["IDTP"], res["IDFN"], res["IDFP"]
    return {
        **res,
        "IDR": idtp / max(1.0, idtp + idfn),
        "IDP": idtp / max(1.0, idtp + idfp),
        "IDF1": idtp / max(1.0, idtp + 0.5 * idfp + 0.5 * idfn),
    }
