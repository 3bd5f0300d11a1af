"""Our HOTA/CLEAR/Identity/Count against TrackEval: the reference cases and hundreds of generated sequences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.evaluator.metrics import compiled, trackeval_metrics
from services.evaluator.metrics.hota import ARRAYS
from shared.errors import InputError
from shared.formats.mot_txt import MotTable, read_mot

trackeval = pytest.importorskip("trackeval")
CASES = ("tud_campus", "user_demo", "edge_id_swap")
BACKENDS = ("compiled", "numpy")  # every TrackEval comparison runs on both implementations


def close(got: float, expected: float, rel: float = 1e-12) -> bool:
    return abs(got - expected) <= rel * max(1.0, abs(expected))


def assert_matches(got: dict, expected: dict, rel: float = 1e-12) -> None:
    for name, value in expected.items():
        assert name in got, name
        if isinstance(value, list | np.ndarray):
            assert len(got[name]) == len(value), name
            assert all(close(g, e, rel) for g, e in zip(got[name], value, strict=True)), (name, got[name], value)
        else:
            assert close(got[name], float(value), rel), (name, got[name], value)


def test_compiled_kernels_are_built():
    # setup.py builds them as optional extensions; the speed target needs them
    assert compiled.available(), "services/evaluator/metrics/_kernels.c did not build (C compiler missing?)"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_reference_cases_equal_trackeval(shared_dir, case, backend):
    folder = shared_dir / "reference" / "eval" / case
    expected = json.loads((folder / "expected.json").read_text())["trackeval"]
    got = trackeval_metrics(read_mot(folder / "gt.txt"), read_mot(folder / "pred.txt"), backend=backend)
    for block in ("HOTA", "CLEAR", "Identity", "Count"):
        assert_matches(got, {k: v for k, v in expected[block].items() if k != "alphas"})


def oracle(gt: MotTable, pred: MotTable, threshold: float = 0.5) -> dict:
    """TrackEval's own metric classes and IoU on data grouped here independently of our code."""
    from trackeval.datasets._base_dataset import _BaseDataset

    frames = [int(t.frame.max()) for t in (gt, pred) if len(t)]
    steps = max(frames) if frames else 0
    gt_map = {v: i for i, v in enumerate(sorted(set(gt.id.tolist())))}
    trk_map = {v: i for i, v in enumerate(sorted(set(pred.id.tolist())))}
    data = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for f in range(1, steps + 1):
        g, p = np.flatnonzero(gt.frame == f), np.flatnonzero(pred.frame == f)
        data["gt_ids"].append(np.array([gt_map[i] for i in gt.id[g].tolist()], dtype=int))
        data["tracker_ids"].append(np.array([trk_map[i] for i in pred.id[p].tolist()], dtype=int))
        data["similarity_scores"].append(
            _BaseDataset._calculate_box_ious(gt.boxes[g], pred.boxes[p], box_format="xywh")
        )
    data |= {
        "num_timesteps": steps,
        "num_gt_ids": len(gt_map),
        "num_tracker_ids": len(trk_map),
        "num_gt_dets": len(gt),
        "num_tracker_dets": len(pred),
        "seq": "seq",
    }
    out = {}
    config = {"THRESHOLD": threshold, "PRINT_CONFIG": False}
    for metric in (trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(config), trackeval.metrics.Identity(config)):
        combined = metric.combine_sequences({"seq": metric.eval_sequence(data)})
        out |= {k: v for k, v in combined.items()}
    for name in ARRAYS:
        out[f"{name}_alpha"], out[name] = out[name], float(np.mean(out[name]))
    for name in ("HOTA_TP", "HOTA_FN", "HOTA_FP"):
        out[f"{name}_alpha"] = out.pop(name)
    out |= {"Dets": len(pred), "GT_Dets": len(gt), "IDs": len(trk_map), "GT_IDs": len(gt_map)}
    return out


def random_pair(rng: np.random.Generator) -> tuple[MotTable, MotTable]:
    """GT objects moving with noise; predictions that miss, jitter, swap ids, add false positives."""
    frames = int(rng.integers(1, 40))
    objects = int(rng.integers(0, 8))
    gt_rows, pred_rows = [], []
    next_id = 100
    pred_ids = {}
    for obj in range(objects):
        start, end = sorted(rng.integers(1, frames + 1, 2))
        pos = rng.uniform(0, 200, 2)
        size = rng.uniform(5, 40, 2)
        for f in range(start, end + 1):
            pos = pos + rng.normal(0, 3, 2)
            gt_rows.append((f, obj + 1, *pos, *size))
            if rng.random() < 0.15:
                continue  # missed
            if rng.random() < 0.05 or obj not in pred_ids:
                pred_ids[obj] = next_id = next_id + 1  # id switch / new track
            jitter = rng.normal(0, rng.choice([0.5, 3, 8]), 4)
            box = (pos[0] + jitter[0], pos[1] + jitter[1], max(0.0, size[0] + jitter[2]), size[1] + jitter[3])
            pred_rows.append((f, pred_ids[obj], *box))
    for _ in range(int(rng.integers(0, 10))):  # false positives, sometimes exactly on top of a GT box
        f = int(rng.integers(1, frames + 1))
        box = gt_rows[int(rng.integers(len(gt_rows)))][2:] if gt_rows and rng.random() < 0.3 else rng.uniform(0, 200, 4)
        pred_rows.append((f, int(rng.integers(1000, 1005)), *box))

    def table(rows):
        seen, unique = set(), []
        for r in rows:  # one id per frame, as both files require
            if (r[0], r[1]) not in seen:
                seen.add((r[0], r[1]))
                unique.append((*r, 1, 1, 1, -1))
        return MotTable.from_matrix(np.asarray(unique, float).reshape(-1, 10))

    return table(gt_rows), table(pred_rows)


@pytest.mark.parametrize("seed", range(250))
def test_generated_sequences_equal_trackeval(seed):
    gt, pred = random_pair(np.random.default_rng(seed))
    expected = oracle(gt, pred)
    assert {"HOTA", "MOTA", "IDF1", "IDSW", "Frag", "MT"} <= expected.keys()
    for backend in BACKENDS:
        got = trackeval_metrics(gt, pred, backend=backend)
        assert_matches(got, {k: v for k, v in expected.items() if k in got})


def crowded_pair(rng: np.random.Generator) -> tuple[MotTable, MotTable]:
    """Many objects in a small area: rows with 3+ overlaps (numpy's pairwise row sums), competing
    pairs in most frames (the assignment solver), exact ties from duplicated tracker boxes."""
    frames, objects = int(rng.integers(5, 30)), int(rng.integers(8, 40))
    gt_rows, pred_rows = [], []
    pos = rng.uniform(0, 120, (objects, 2))
    size = rng.uniform(15, 50, (objects, 2))
    for f in range(1, frames + 1):
        pos += rng.normal(0, 2, pos.shape)
        for i in range(objects):
            gt_rows.append((f, i + 1, *pos[i], *size[i], 1, 1, 1, -1))
            if rng.random() < 0.9:
                box = np.round(np.concatenate([pos[i], size[i]]) + rng.normal(0, 3, 4), 1)
                track = i + 1 + 50 * int(rng.random() < 0.1)  # some id switches
                pred_rows.append((f, track, *box, 1, 1, -1, -1))
                if rng.random() < 0.1:  # a duplicate track on exactly the same box
                    pred_rows.append((f, track + 500, *box, 1, 1, -1, -1))
    return MotTable.from_matrix(np.array(gt_rows)), MotTable.from_matrix(np.array(pred_rows))


@pytest.mark.parametrize("seed", range(40))
def test_backends_give_identical_bits_on_crowded_scenes(seed):
    gt, pred = crowded_pair(np.random.default_rng(seed))
    threshold = (0.5, 0.3, 0.0, 0.9)[seed % 4]  # 0.0 makes pairs without any overlap eligible
    fast = trackeval_metrics(gt, pred, threshold, backend="compiled")
    reference = trackeval_metrics(gt, pred, threshold, backend="numpy")
    assert fast.keys() == reference.keys()
    for name, value in reference.items():
        assert np.array_equal(np.asarray(fast[name]), np.asarray(value), equal_nan=True), name
    if seed < 12:  # and both equal TrackEval at that threshold
        expected = oracle(gt, pred, threshold)
        assert_matches(fast, {k: v for k, v in expected.items() if k in fast})


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_inputs_follow_trackevals_branches(backend):
    gt, _ = random_pair(np.random.default_rng(7))
    empty = MotTable.empty()
    no_pred = trackeval_metrics(gt, empty, backend=backend)
    assert no_pred["CLR_FN"] == len(gt) and no_pred["MOTA"] == 0 and no_pred["CLR_Frames"] == 0
    assert no_pred["LocA(0)"] == 1.0 and no_pred["IDFN"] == len(gt)
    no_gt = trackeval_metrics(empty, gt, backend=backend)
    assert no_gt["MOTA"] == -len(gt) and no_gt["FP_per_frame"] == len(gt) and no_gt["IDFP"] == len(gt)


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicate_and_negative_ids_are_refused(backend):
    gt = MotTable.from_matrix([[1, 1, 0, 0, 5, 5, 1, 1, 1, -1], [1, 1, 9, 9, 5, 5, 1, 1, 1, -1]])
    with pytest.raises(InputError, match="id 1 appears more than once in frame 1"):
        trackeval_metrics(gt, MotTable.empty(), backend=backend)
    neg = MotTable.from_matrix([[2, -1, 0, 0, 5, 5, 1, 1, 1, -1]])
    with pytest.raises(InputError, match="negative id -1 in frame 2"):
        trackeval_metrics(gt.select(np.array([True, False])), neg, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sequence", ["TUD-Campus", "TUD-Stadtmitte"])
def test_motmetrics_shipped_tud_data_equals_trackeval(sequence, backend):
    motmetrics = pytest.importorskip("motmetrics")
    from pathlib import Path

    folder = Path(motmetrics.__file__).parent / "data" / sequence
    gt, pred = read_mot(folder / "gt.txt"), read_mot(folder / "test.txt")
    expected = oracle(gt, pred)
    got = trackeval_metrics(gt, pred, backend=backend)
    assert_matches(got, {k: v for k, v in expected.items() if k in got})
    assert got["CLR_TP"] > 0 and got["IDTP"] > 0
