"""Identity metrics (IDF1, IDP, IDR, IDTP/IDFN/IDFP) as TrackEval computes them."""

from __future__ import annotations

import numpy as np

from .sequence import Sequence


def identity_counts(seq: Sequence, threshold: float = 0.5) -> dict[str, int]:
    if seq.num_trk_dets == 0 or seq.num_gt_dets == 0:
        return {"IDTP": 0, "IDFN": seq.num_gt_dets, "IDFP": seq.num_trk_dets}
    size = seq.num_gt_ids * seq.num_trk_ids
    potential = np.zeros(size)
    for chunk in seq.chunks:
        c, g, p = np.nonzero(chunk.valid & (chunk.sim >= threshold))  # no eps here, unlike CLEAR and HOTA
        potential += np.bincount(chunk.gt_ids[c, g] * seq.num_trk_ids + chunk.trk_ids[c, p], minlength=size)
    return identity_from_potential(seq, potential.reshape(seq.num_gt_ids, seq.num_trk_ids))


def identity_from_potential(seq: Sequence, potential: np.ndarray, assign=None) -> dict[str, int]:
    """IDTP/IDFN/IDFP from the (gt id, tracker id) counts of frames where the pair overlaps enough.
    `assign(cost) -> (rows, cols)` solves the assignment (default scipy's; the compiled path passes its own,
    so an evaluation does not import scipy)."""
    # IDTP is the best one-to-one id mapping's overlap count: unique, whatever the tie-breaking
    if assign is None:
        from scipy.optimize import linear_sum_assignment as assign
    rows, cols = assign(-potential)
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
