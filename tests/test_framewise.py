"""The group's framewise metrics and losses against the outputs of their own script."""

import json

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
