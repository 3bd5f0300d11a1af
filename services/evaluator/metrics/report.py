"""The `trackeval` block of the metrics JSON: HOTA + CLEAR + Identity + Count in one flat dict."""

from __future__ import annotations

import numpy as np

from shared.formats.mot_txt import MotTable

from .clear import clear_counts, clear_final
from .hota import ALPHAS, ARRAYS, hota_combined, hota_sequence
from .identity import identity_counts, identity_final
from .sequence import build_sequence


def trackeval_metrics(gt: MotTable, pred: MotTable, threshold: float = 0.5) -> dict[str, float | list[float]]:
    """TrackEval's COMBINED_SEQ values for one sequence; `<name>_alpha` lists hold HOTA's per-alpha curves."""
    seq = build_sequence(gt, pred)
    hota = hota_combined(hota_sequence(seq))
    out: dict[str, float | list[float]] = {name: float(np.mean(hota[name])) for name in ARRAYS}
    out |= {f"{name}_alpha": hota[name].tolist() for name in ARRAYS}
    out |= {f"{name}_alpha": hota[name].tolist() for name in ("HOTA_TP", "HOTA_FN", "HOTA_FP")}
    out["alphas"] = ALPHAS.tolist()
    out["HOTA(0)"] = float(hota["HOTA"][0])
    out["LocA(0)"] = float(hota["LocA"][0])
    out["HOTALocA(0)"] = out["HOTA(0)"] * out["LocA(0)"]
    out |= clear_final(clear_counts(seq, threshold))
    out |= identity_final(identity_counts(seq, threshold))
    out |= {
        "Dets": seq.num_trk_dets,
        "GT_Dets": seq.num_gt_dets,
        "IDs": seq.num_trk_ids,
        "GT_IDs": seq.num_gt_ids,
        "Frames": seq.num_timesteps,
    }
    return out
