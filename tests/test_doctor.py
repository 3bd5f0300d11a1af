"""The dataset doctor: every finding is triggered by a case made for it, and clean inputs raise none."""

import json

import numpy as np
import pytest

from services.evaluator.doctor import check_det_db, check_gt, check_tracks, run_doctor
from services.gateway.cli import main
from shared.formats.det_db import det_db_key, write_det_db
from shared.formats.mot_txt import MotTable, write_mot

SIZE = (640, 360)


def codes(findings) -> set[str]:
    return {f.code for f in findings}


def detector_like_det_db(gt: MotTable, sequence: str = "s", frames: int | None = None, seed: int = 0) -> dict:
    """What a detector would give: GT boxes moved a little, varied scores, a false positive now and then."""
    rng = np.random.default_rng(seed)
    frames = frames or int(gt.frame.max())
    db = {}
    for f in range(1, frames + 1):
        boxes = gt.boxes[gt.frame == f] + rng.normal(0, 1.5, (int((gt.frame == f).sum()), 4))
        boxes[:, 2:] = np.abs(boxes[:, 2:])
        scores = rng.uniform(0.35, 0.95, (len(boxes), 1))
        db[det_db_key(sequence, f)] = np.hstack([boxes, scores])
    return db


@pytest.fixture
def clean(scene):
    return detector_like_det_db(scene.gt), scene.gt, scene.frames


def test_clean_inputs_raise_no_finding(clean, scene):
    det_db, gt, frames = clean
    assert codes(check_det_db(det_db, "s", frames, SIZE, gt)) == set()
    assert codes(check_gt(gt, frames, SIZE)) == set()
    tracks = MotTable.from_matrix(
        np.column_stack([gt.frame, gt.id, gt.boxes, np.linspace(0.5, 1, len(gt)), -np.ones((len(gt), 3))])
    )
    assert codes(check_tracks(tracks)) == set()


def test_partial_coverage_300_of_1860(clean):
    det_db, gt, _ = clean
    partial = {det_db_key("s", f): det_db.get(det_db_key("s", (f - 1) % 60 + 1)) for f in range(1, 301)}
    finding = next(f for f in check_det_db(partial, "s", 1860) if f.code == "DETDB_PARTIAL_COVERAGE")
    assert finding.severity == "error"
    assert finding.evidence == {"covered": 300, "frames": 1860, "first_missing_key": "s/img1/000301"}


def test_long_runs_without_detections(clean):
    det_db, gt, frames = clean
    holes = {k: (np.zeros((0, 5)) if 10 <= i < 40 else v) for i, (k, v) in enumerate(det_db.items())}
    finding = next(f for f in check_det_db(holes, "s", frames) if f.code == "DETDB_EMPTY_RUN")
    assert finding.evidence["first_frame"] == 11 and finding.evidence["length"] == 30


def test_all_empty_det_db():
    assert "DETDB_EMPTY" in codes(check_det_db({det_db_key("s", f): np.zeros((0, 5)) for f in range(1, 9)}, "s", 8))


def test_keys_of_another_sequence_or_another_padding(clean):
    det_db, _, frames = clean
    finding = next(f for f in check_det_db(det_db, "test2", frames) if f.code == "DETDB_KEY_MISMATCH")
    assert finding.evidence["expected_key"] == "test2/img1/000001"
    assert finding.evidence["available_key"] == "s/img1/000001"
    assert finding.evidence["nearest_pattern"] == "s/img1/{frame:06d}"
    padded = {f"frames/{i:08d}.jpg": v for i, v in enumerate(det_db.values(), start=1)}
    finding = next(f for f in check_det_db(padded, "s", frames) if f.code == "DETDB_KEY_MISMATCH")
    assert finding.evidence["nearest_pattern"] == "frames/{frame:08d}.jpg"


def test_det_db_copied_from_ground_truth(scene):
    gt = scene.gt
    copied = {det_db_key("s", f): np.hstack([gt.boxes[gt.frame == f], np.ones(((gt.frame == f).sum(), 1))])
              for f in range(1, scene.frames + 1)}  # fmt: skip
    found = check_det_db(copied, "s", scene.frames, SIZE, gt)
    assert "DETDB_COPY_OF_GT" in codes(found)
    assert next(f for f in found if f.code == "DETDB_COPY_OF_GT").evidence["share_of_gt_boxes"] == 1.0


def test_wrong_detector_signs(clean):
    det_db, gt, frames = clean
    one_box = {k: np.array([[100, 100, 30, 30, 0.5]]) for k in det_db}
    found = codes(check_det_db(one_box, "s", frames, SIZE, gt))
    assert {"DETDB_ONE_SIZE", "DETDB_FEW_BOXES"} <= found
    ones = {k: np.column_stack([v[:, :4], np.ones(len(v))]) for k, v in det_db.items()}
    assert "DETDB_SCORES_ALL_ONE" in codes(check_det_db(ones, "s", frames, SIZE, None))


def test_ground_truth_ids_restart_or_jump(scene):
    gt = scene.gt
    restart = MotTable.from_matrix(np.column_stack([gt.frame, np.arange(len(gt)), gt.boxes, np.ones((len(gt), 4))]))
    finding = next(f for f in check_gt(restart, scene.frames, SIZE) if f.code == "GT_IDS_RESTART")
    assert finding.evidence["ids"] == len(gt)
    pairs = MotTable.from_matrix(
        np.column_stack([gt.frame, gt.id + 10 * ((gt.frame + 1) // 2), gt.boxes, np.ones((len(gt), 4))])
    )
    assert "GT_IDS_JUMP" in codes(check_gt(pairs, scene.frames, SIZE))


def test_ground_truth_beyond_the_video(scene):
    finding = next(f for f in check_gt(scene.gt, 40, SIZE) if f.code == "GT_BEYOND_FRAMES")
    assert finding.evidence == {"last_gt_frame": scene.frames, "frames": 40, "first_beyond": 41}


def test_boxes_outside_zero_and_duplicate_ids():
    table = MotTable.from_matrix([[1, 1, 700, 10, 5, 5, 1, 1, 1, -1], [1, 2, 10, 10, 0, 5, 1, 1, 1, -1],
                                  [2, 3, 10, 10, 5, 5, 1, 1, 1, -1], [2, 3, 20, 20, 5, 5, 1, 1, 1, -1]])  # fmt: skip
    found = {f.code: f for f in check_gt(table, None, SIZE)}
    assert found["GT_BOXES_OUTSIDE_IMAGE"].evidence["count"] == 1
    assert found["GT_ZERO_SIZE_BOXES"].evidence["count"] == 1
    assert found["GT_DUPLICATE_IDS"].evidence["frame"] == 2 and found["GT_DUPLICATE_IDS"].evidence["id"] == 3


def test_tracker_output_problems(shared_dir, tmp_path):
    empty = run_doctor(tracks_path=shared_dir / "samples" / "motrv2_tracks_empty.txt")
    assert codes(empty.findings) == {"TRACKS_EMPTY"} and empty.has_errors
    frames = np.repeat(np.arange(1, 151), 2)
    fragmented = MotTable.from_matrix(np.column_stack([frames, np.arange(300), np.full((300, 4), 10.0),
                                                       np.full(300, 0.9), -np.ones((300, 3))]))  # fmt: skip
    assert {"TRACKS_FRAGMENTED", "TRACKS_SCORES_IDENTICAL"} <= codes(check_tracks(fragmented))
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,0,0,5,5\n1,2,0,0,nan,5\n")
    finding = run_doctor(tracks_path=bad).findings[0]
    assert finding.code == "TRACKS_UNPARSABLE" and "line 2" in finding.message


def test_real_det_db_clean_for_its_sequence_and_mismatched_for_another(shared_dir):
    path = shared_dir / "samples" / "det_db_beach_volleyball.json"
    ok = run_doctor(det_db_path=path, sequence="volleyball/test/test1", num_frames=956, frame_size=(1920, 1080))
    assert not ok.has_errors
    wrong = run_doctor(det_db_path=path, sequence="volleyball/train/train1", num_frames=956)
    assert "DETDB_KEY_MISMATCH" in codes(wrong.findings)
    short = run_doctor(det_db_path=path, sequence="volleyball/test/test1", num_frames=1860)
    assert "DETDB_PARTIAL_COVERAGE" in codes(short.findings)


def test_cli_json_and_exit_codes(clean, scene, tmp_path, capsys):
    det_db, gt, frames = clean
    db = tmp_path / "db.json"
    write_det_db(db, det_db)
    assert main(["doctor", "--det-db", str(db), "--gt", str(scene.gt_txt), "--frames", str(scene.video),
                 "--sequence", "s", "--json", "-"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out) == {"findings": []}
    empty = tmp_path / "tracks.txt"
    write_mot(empty, MotTable.empty())
    assert main(["doctor", "--tracks", str(empty), "--json", "-"]) == 1
    finding = json.loads(capsys.readouterr().out)["findings"][0]
    assert set(finding) == {"code", "severity", "message", "evidence", "fix"} and finding["code"] == "TRACKS_EMPTY"
