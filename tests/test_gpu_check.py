"""The GPU check's agreement measure (ONNX Runtime / TensorRT det_db against PyTorch's): the script itself
needs a GPU for its numbers; `python scripts/gpu_check.py --device cpu --frames 16 --track-frames 2 --slots 1`
runs every row on a CPU in ~4 min (not in CI)."""

from __future__ import annotations

import numpy as np

from scripts.gpu_check import agreement


def test_agreement_counts_boxes_found_again_at_iou_09_and_the_worst_score_gap():
    ours = {"a": np.array([[10, 10, 100, 100, 0.9], [300, 300, 50, 50, 0.5]]), "b": np.array([[0, 0, 10, 10, 0.4]])}
    same = {key: rows.copy() for key, rows in ours.items()}
    assert agreement(ours, same) == (1.0, 0.0)
    moved = {"a": np.array([[12, 10, 100, 100, 0.88], [330, 300, 50, 50, 0.5]])}  # one at IoU 0.96, one at 0.25
    share, worst = agreement(ours, moved)
    assert share == 1 / 3 and abs(worst - 0.02) < 1e-9
    assert agreement({}, moved) == (1.0, 0.0)
