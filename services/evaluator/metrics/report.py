"""The `trackeval` block of the metrics JSON: HOTA + CLEAR + Identity + Count in one flat dict."""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from shared.formats.mot_txt import MotTable

from . import compiled
from .clear import clear_counts, clear_final, clear_without_matches
from .hota import ALPHAS, ARRAYS, hota_combined, hota_sequence, hota_without_matches
from .identity import identity_counts, identity_final
from .sequence import Layout, build_sequence, lay_out

Backend = Literal["compiled", "numpy"]


class ClearPairs(NamedTuple):
    """CLEAR's matching as the compiled kernel made it: `pairs[k]` is the tracker row (`pred_layout`'s
    order) matched to GT row `gt_layout[0][k]`, or -1; what the error events are read from."""

    gt_layout: Layout
    pred_layout: Layout
    pairs: np.ndarray


def default_backend() -> Backend:
    return "compiled" if compiled.available() else "numpy"


def _counts(gt: MotTable, pred: MotTable, threshold: float, backend: Backend):
    if backend == "numpy":
        seq = build_sequence(gt, pred)
        return seq, hota_sequence(seq), clear_counts(seq, threshold), identity_counts(seq, threshold), None
    if not compiled.available():
        raise RuntimeError("the compiled metric kernels are not built (reinstall with a C compiler)")
    seq, gt_layout, pred_layout = lay_out(gt, pred)
    if seq.num_gt_dets == 0 or seq.num_trk_dets == 0:
        unmatched = ClearPairs(gt_layout, pred_layout, np.full(len(gt), -1, dtype=np.int64))
        return seq, hota_without_matches(seq), clear_without_matches(seq), identity_counts(seq, threshold), unmatched
    hota, clear, identity, pairs = compiled.kernel_counts(seq, gt, gt_layout, pred, pred_layout, threshold)
    return seq, hota, clear, identity, ClearPairs(gt_layout, pred_layout, pairs)


def trackeval_metrics(
    gt: MotTable, pred: MotTable, threshold: float = 0.5, backend: Backend | None = None
) -> dict[str, float | list[float]]:
    """TrackEval's COMBINED_SEQ values for one sequence; `<name>_alpha` lists hold HOTA's per-alpha curves.

    Both backends give the same bits; "compiled" (the default when built) is the fast one.
    """
    return trackeval_metrics_and_pairs(gt, pred, threshold, backend)[0]


def trackeval_metrics_and_pairs(
    gt: MotTable, pred: MotTable, threshold: float = 0.5, backend: Backend | None = None
) -> tuple[dict[str, float | list[float]], ClearPairs | None]:
    """`trackeval_metrics` and CLEAR's matching (None from the numpy backend, which keeps it per chunk)."""
    seq, hota, clear, identity, pairs = _counts(gt, pred, threshold, backend or default_backend())
    hota = hota_combined(hota)
    out: dict[str, float | list[float]] = {name: float(np.mean(hota[name])) for name in ARRAYS}
    out |= {f"{name}_alpha": hota[name].tolist() for name in ARRAYS}
    out |= {f"{name}_alpha": hota[name].tolist() for name in ("HOTA_TP", "HOTA_FN", "HOTA_FP")}
    out["alphas"] = ALPHAS.tolist()
    out["HOTA(0)"] = float(hota["HOTA"][0])
    out["LocA(0)"] = float(hota["LocA"][0])
    out["HOTALocA(0)"] = out["HOTA(0)"] * out["LocA(0)"]
    out |= clear_final(clear)
    out |= identity_final(identity)
    out |= {
        "Dets": seq.num_trk_dets,
        "GT_Dets": seq.num_gt_dets,
        "IDs": seq.num_trk_ids,
        "GT_IDs": seq.num_gt_ids,
        "Frames": seq.num_timesteps,
    }
    return out, pairs
