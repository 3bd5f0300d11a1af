"""`motpipe sweep` in one process: a grid and an Optuna search over one det_db, ranked by HOTA."""

import json

import pytest

from services.detector.engine import run_detection, write_detections
from services.detector.registry import build_detector
from services.gateway.cli import main
from shared.frames import open_frames
from shared.schemas import DetectOptions


@pytest.fixture(scope="module")
def det_db(scene, tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "det_db.json"
    options = DetectOptions(detector="motion", sequence="synth")
    write_detections(run_detection(open_frames(scene.video), build_detector(options, "cpu"), options, None), path)
    return path


def test_grid_sweep_ranks_every_combination(scene, det_db, tmp_path):
    out = tmp_path / "grid"
    code = main(["sweep", "--det-db", str(det_db), "--gt", str(scene.gt_txt), "--grid", "score_threshold=0.2,0.97",
                 "minimum_consecutive_frames=1,20", "--out", str(out)])  # fmt: skip
    assert code == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert len(board) == 4 and [r["HOTA"] for r in board] == sorted((r["HOTA"] for r in board), reverse=True)
    assert board[0]["params"] == {"score_threshold": 0.2, "minimum_consecutive_frames": 1}
    assert (out / "leaderboard.csv").read_text().startswith("rank,run,score_threshold,minimum_consecutive_frames")
    assert (out / "plots" / "heatmap.png").is_file() and (out / "plots" / "ranked.png").is_file()
    assert (out / board[0]["run"] / "tracks.txt").is_file() and (out / board[0]["run"] / "metrics.json").is_file()


def test_optuna_search_stays_within_the_ranges(scene, det_db, tmp_path):
    out = tmp_path / "optuna"
    code = main(["sweep", "--det-db", str(det_db), "--gt", str(scene.gt_txt), "--grid", "score_threshold=0.1,0.6",
                 "lost_track_buffer=5,40", "--search", "optuna", "--trials", "5", "--out", str(out)])  # fmt: skip
    assert code == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert len(board) == 5
    for row in board:
        assert 0.1 <= row["params"]["score_threshold"] <= 0.6 and 5 <= row["params"]["lost_track_buffer"] <= 40
        assert isinstance(row["params"]["lost_track_buffer"], int)


def test_bad_grid_is_refused_naming_it(scene, det_db, tmp_path, capsys):
    code = main(["sweep", "--det-db", str(det_db), "--gt", str(scene.gt_txt), "--grid", "colour=red",
                 "--out", str(tmp_path / "x")])  # fmt: skip
    assert code == 2 and "colour" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_printed_leaderboard_fits_100_columns_with_short_values():
    from services.trainer.sweeps import leaderboard_text

    rows = [{"run": f"{i:02d}", "state": "succeeded", "error": None,
             "params": {"score_threshold": 0.123456 * i, "minimum_consecutive_frames": i, "lost_track_buffer": 30},
             "HOTA": 0.5 + i / 100, "DetA": 0.5, "AssA": 0.5, "IDF1": 0.5, "MOTA": 0.5, "IDSW": 3,
             "per_class": {"ball": {"HOTA": 0.25}}} for i in range(1, 4)]  # fmt: skip
    params = {"score_threshold": 2, "minimum_consecutive_frames": 1, "lost_track_buffer": 30}
    rows.append({"run": "04", "state": "failed", "error": "x" * 300, "params": params})
    text = leaderboard_text(rows)
    assert all(len(line) <= 100 for line in text.splitlines()), text
    assert "st=0.3704" in text and "0.370368" not in text  # 4 significant digits
    assert "in every row: lost_track_buffer=30" in text and "ball HOTA" in text and "0.2500" in text
    assert "st=score_threshold" in text and "failed: xxx" in text
