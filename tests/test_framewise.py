"""The group's framewise metrics and losses against the outputs of their own script."""

import json

import numpy as np
import pytest

from services.evaluator.framewise import framewise_metrics
from shared.formats.labelstudio import read_labelstudio
from shared.formats.mot_txt import MotTable, read_mot

THRESHOLDS = ("0.5", "0.3", "0.7")


def load_case(shared_dir, case):
    folder = shared_dir / "reference" / "eval" / case
    gt = read_labelstudio(folder / "demo_gt.json").table if case == "user_demo" else read_mot(folder / "gt.txt")
    return folder, gt, read_mot(folder / "pred.txt")


@pytest.mark.parametrize("case", ["tud_campus", "user_demo"])
@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_current_version_exactly(shared_dir, case, threshold):
    folder, gt, pred = load_case(shared_dir, case)
    expected = json.loads((folder / "framewise_expected.json").read_text())["runs"][threshold]
    got = framewise_metrics(gt, pred, float(threshold))
    for name, value in expected["metrics"].items():
        assert got["framewise"][name] == value, name
    for name, value in expected["losses"].items():
        assert got["losses"][name] == value, name
    frames = [
        {"frame_id": f["frame"], "tp": f["tp"], "fp": f["fp"], "fn": f["fn"], "precision": f["precision"],
         "recall": f["recall"], "f1": f["f1"], "gt_count": f["gt"], "pred_count": f["pred"]}
        for f in got["per_frame"]
    ]  # fmt: skip
    assert frames == expected["frame_metrics"]


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_old_version_id_switches_and_tracking_loss(shared_dir, threshold):
    folder, gt, pred = load_case(shared_dir, "user_demo")
    expected = json.loads((folder / "framewise_old_expected.json").read_text())["runs"][threshold]
    got = framewise_metrics(gt, pred, float(threshold))
    assert got["framewise"]["id_switches"] == expected["metrics"]["id_switches"]
    assert got["framewise"]["mota_with_idsw"] == expected["metrics"]["mota"]
    assert got["losses"]["tracking_loss"] == expected["losses"]["tracking_loss"]
    assert got["losses"]["combined_loss_tracking"] == expected["losses"]["combined_loss"]


def test_no_common_frame_gives_zero_losses():
    gt = MotTable.from_matrix([[1, 1, 0, 0, 5, 5, 1, 1, 1, -1]])
    pred = MotTable.from_matrix([[2, 1, 0, 0, 5, 5, 1, 1, 1, -1]])
    got = framewise_metrics(gt, pred)
    assert got["framewise"]["total_frames"] == 0 and set(got["losses"].values()) == {0.0}


def _random_pair(rng, frames: int, objects: int):
    from shared.formats.mot_txt import MotTable

    gt_rows, pred_rows = [], []
    for f in range(1, frames + 1):
        if rng.random() < 0.1:
            continue  # a frame without ground truth
        for obj in range(1, objects + 1):
            box = rng.integers(0, 40, 4).astype(float) + [0, 0, 1, 1]  # small integers: many exact IoU ties
            gt_rows.append([f, obj, *box, 1, 1, 1, -1])
            for copy in range(int(rng.integers(0, 3))):  # misses and duplicates (identical boxes tie exactly)
                track = obj if rng.random() > 0.1 else obj + 100 * copy + 50  # id switches
                jitter = rng.integers(-2, 3, 4) * (rng.random() < 0.5)
                pred_rows.append([f, track, *(box + jitter), 0.9, 1, -1, -1])
    empty = np.zeros((0, 10))
    return (MotTable.from_matrix(np.array(gt_rows) if gt_rows else empty),
            MotTable.from_matrix(np.array(pred_rows) if pred_rows else empty))  # fmt: skip


def test_compiled_framewise_equals_the_numpy_path_bit_for_bit():
    from services.evaluator.framewise import framewise_metrics
    from services.evaluator.metrics import compiled

    assert compiled.available()
    rng = np.random.default_rng(7)
    for trial in range(150):
        gt, pred = _random_pair(rng, int(rng.integers(1, 25)), int(rng.integers(1, 8)))
        for threshold in (0.5, 0.3, 0.0, 1.0):
            expected = framewise_metrics(gt, pred, threshold, backend="numpy")
            assert framewise_metrics(gt, pred, threshold, backend="compiled") == expected, (trial, threshold)
