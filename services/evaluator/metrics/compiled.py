"""HOTA, CLEAR and Identity of one sequence through the compiled kernel (`_kernels.c`).

The kernel walks the frames once for IoU, HOTA's potential matches, Identity's counts and
CLEAR, then once more for HOTA's matching; it returns counts and sums, and the shared Python
code (`hota_from_matches`, `clear_from_matches`, `identity_from_potential`) turns them into
metrics exactly as for the numpy implementation. Built at install time when a C compiler is
present; `available()` says whether it was.
"""

from __future__ import annotations

import numpy as np

from shared.formats.mot_txt import MotTable

from .clear import clear_from_matches
from .hota import ALPHAS, hota_from_matches
from .identity import identity_from_potential
from .sequence import Layout, Sequence

try:
    from . import _kernels
except ImportError:  # installed without a C compiler: report.py uses the numpy implementation
    _kernels = None


def available() -> bool:
    return _kernels is not None


def _by_frame(table: MotTable, layout: Layout, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order, ids, _, _, per_frame, _ = layout
    offsets = np.zeros(steps + 1, dtype=np.int64)
    np.cumsum(per_frame, out=offsets[1:])
    return offsets, np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(table.boxes[order])


def kernel_outputs(
    seq: Sequence,
    gt: MotTable,
    gt_layout: Layout,
    pred: MotTable,
    pred_layout: Layout,
    threshold: float,
    solver_only: bool = False,
) -> dict[str, np.ndarray]:
    """The kernel's raw sums and counts (see `evaluate` in _kernels.c).

    `solver_only` sends every frame with competing pairs to the solver (tests compare it with the
    default, which settles small groups with a clear best matching without it).
    """
    steps, g, p, k = seq.num_timesteps, seq.num_gt_ids, seq.num_trk_ids, len(ALPHAS)
    out = {"id_potential": np.zeros((g, p)), "tp": np.zeros(k), "loc_sums": np.zeros(k)}
    out |= {"counts": np.zeros((k, g, p)), "totals": np.zeros(3)}
    out |= {"matched": np.zeros(g, dtype=np.int64), "frag_starts": np.zeros(g, dtype=np.int64)}
    out["alignment"] = np.zeros((g, p))
    out["clear_pairs"] = np.full(seq.num_gt_dets, -1, dtype=np.int64)
    _kernels.evaluate(
        steps, g, p, float(threshold), not solver_only,
        *_by_frame(gt, gt_layout, steps), *_by_frame(pred, pred_layout, steps),
        seq.gt_count.astype(np.int64), seq.trk_count.astype(np.int64), ALPHAS, *out.values(),
    )  # fmt: skip
    return out


def assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost assignment with scipy's algorithm and tie rule (`linear_sum_assignment`'s result)."""
    rows, cols = cost.shape
    match = np.empty(rows, dtype=np.int64)
    _kernels.assign(np.ascontiguousarray(cost, dtype=np.float64), rows, cols, match)
    matched = np.flatnonzero(match >= 0)
    return matched, match[matched]


def kernel_counts(
    seq: Sequence, gt: MotTable, gt_layout: Layout, pred: MotTable, pred_layout: Layout, threshold: float
) -> tuple[dict, dict, dict, np.ndarray]:
    """(HOTA arrays, CLEAR counts, Identity counts, CLEAR's pairs) of a sequence with GT and tracker rows;
    the pairs give each GT row (in `gt_layout`'s order) the tracker row it matched (in `pred_layout`'s
    order) or -1."""
    out = kernel_outputs(seq, gt, gt_layout, pred, pred_layout, threshold)
    clear_tp, idsw, motp_sum = out["totals"]
    return (
        hota_from_matches(seq, out["tp"], out["loc_sums"], out["counts"]),
        clear_from_matches(seq, int(clear_tp), int(idsw), float(motp_sum), out["matched"], out["frag_starts"]),
        identity_from_potential(seq, out["id_potential"], assign),
        out["clear_pairs"],
    )
