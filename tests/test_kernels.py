"""The compiled kernel's building blocks against the libraries whose arithmetic it reproduces."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from services.evaluator.metrics import compiled

pytestmark = pytest.mark.skipif(not compiled.available(), reason="compiled kernels not built")


def random_matrix(rng: np.random.Generator, rows: int, cols: int, kind: int) -> np.ndarray:
    if kind == 0:  # small integers: many exact ties, where tie-breaking decides
        return rng.integers(0, 4, (rows, cols)).astype(float)
    if kind == 1:  # sparse positive scores, as IoU-based score matrices are
        return rng.random((rows, cols)) * (rng.random((rows, cols)) < 0.4)
    return np.round(rng.random((rows, cols)), 1)


def test_assignment_equals_scipys_including_ties():
    rng = np.random.default_rng(0)
    for trial in range(6000):
        rows, cols = (int(v) for v in rng.integers(0, 9, 2))  # wide, tall (transposed) and square
        cost = -random_matrix(rng, rows, cols, trial % 3)
        expected_rows, expected_cols = linear_sum_assignment(cost)
        match = np.empty(rows, dtype=np.int64)
        compiled._kernels.assign(np.ascontiguousarray(cost), rows, cols, match)
        got = [(r, int(c)) for r, c in enumerate(match) if c >= 0]
        assert got == list(zip(expected_rows.tolist(), expected_cols.tolist(), strict=True)), cost


def test_row_sum_is_numpys_pairwise_sum():
    rng = np.random.default_rng(1)
    for n in list(range(0, 300)) + [511, 512, 513, 1000, 4099]:
        for density in (1.0, 0.3, 0.05):
            values = rng.random(n) * (rng.random(n) < density)
            assert compiled._kernels.row_sum(values) == values.sum(), (n, density)
        rows = rng.random((3, n))  # numpy sums each row of a matrix the same way
        assert all(compiled._kernels.row_sum(rows[i].copy()) == rows.sum(axis=1)[i] for i in range(3))


def test_alignment_scores_are_bit_identical_to_the_numpy_path():
    # A last-bit error here (e.g. a row summed in the wrong order) almost never changes a metric,
    # so it is checked directly: crowded frames with 3+ overlaps per row over 8+ columns.
    from services.evaluator.metrics.hota import _alignment
    from services.evaluator.metrics.sequence import build_sequence, lay_out
    from tests.test_trackeval_parity import crowded_pair

    for seed in range(10):
        gt, pred = crowded_pair(np.random.default_rng(seed))
        seq, gt_layout, pred_layout = lay_out(gt, pred)
        got = compiled.kernel_outputs(seq, gt, gt_layout, pred, pred_layout, 0.5)["alignment"]
        assert (got.view(np.int64) == _alignment(build_sequence(gt, pred)).view(np.int64)).all(), seed


@pytest.mark.parametrize("threshold", [0.5, 0.0])
def test_small_groups_settle_exactly_as_the_solver_would(threshold):
    # frames with competing pairs are split into groups; a group with a clear best matching
    # skips the solver. Everything the kernel returns must equal the solver-only run, bit for bit,
    # on crowded scenes full of competition and exact ties (duplicated tracker boxes).
    from services.evaluator.metrics.sequence import lay_out
    from tests.test_trackeval_parity import crowded_pair

    for seed in range(30):
        gt, pred = crowded_pair(np.random.default_rng(100 + seed))
        seq, gt_layout, pred_layout = lay_out(gt, pred)
        grouped = compiled.kernel_outputs(seq, gt, gt_layout, pred, pred_layout, threshold)
        solved = compiled.kernel_outputs(seq, gt, gt_layout, pred, pred_layout, threshold, solver_only=True)
        for name, value in solved.items():
            assert (grouped[name].view(np.int64) == value.view(np.int64)).all(), (seed, name)
