"""The ball keeps its class from detector to metrics: the det_db's classes sidecar, class-aware trackers, and
`per_class` metrics equal to TrackEval run on each class alone; thresholds that leave nothing say so."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.evaluator.evaluate import evaluate
from services.gateway.cli import main
from shared.formats.det_db import classes_path, det_db_key, read_det_db, write_det_db, write_det_db_classes
from shared.formats.mot_txt import MotTable, read_mot
from shared.synth import render_scene
from tests.test_per_class_eval import assert_equal_to_trackeval, run_trackeval


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return render_scene(tmp_path_factory.mktemp("two_classes"), frames=60, seed=5, size=(640, 360))


def _only(table: MotTable, cls: int) -> MotTable:
    return table.select(table.cls == cls)


def test_motion_detect_bytetrack_eval_gives_both_classes_equal_to_trackeval(clip, tmp_path, capsys):
    db, tracks = tmp_path / "match_det_db.json", tmp_path / "tracks.txt"
    assert main(["detect", str(clip.video), "--sequence", "m", "--out", str(db)]) == 0
    sidecar = classes_path(db)
    assert sidecar.name == "match_det_db.classes.json" and str(sidecar) in capsys.readouterr().err
    det_db, classes = read_det_db(db), json.loads(sidecar.read_text())
    assert list(classes) == list(det_db) and all(len(classes[k]) == len(det_db[k]) for k in det_db)
    assert {c for values in classes.values() for c in values} == {1, 2}
    assert main(["track", "--det-db", str(db), "--out", str(tracks)]) == 0
    out = read_mot(tracks)
    assert set(out.cls.tolist()) == {1, 2}
    assert all(len(set(out.cls[out.id == i].tolist())) == 1 for i in set(out.id.tolist()))  # one class a life
    report = evaluate(clip.gt, out)
    assert set(report.per_class) == {"player", "ball"}
    for name, cls in (("player", 1), ("ball", 2)):
        expected = run_trackeval(tmp_path / name, _only(clip.gt, cls), _only(out, cls), clip.frames)
        assert_equal_to_trackeval(report.per_class[name]["trackeval"], expected)
    assert report.per_class["ball"]["trackeval"]["HOTA"] > 0.3  # the ball is tracked, not just present


def test_bytetrack_never_links_a_ball_to_a_player_track(tmp_path):
    """A ball proposal on top of a player's box in the next frame stays its own track, with its own class."""
    player, ball = [100.0, 100.0, 40.0, 80.0, 0.9], [102.0, 102.0, 38.0, 78.0, 0.9]
    det_db = {det_db_key("s", f): np.array([player if f < 5 else ball]) for f in range(1, 10)}
    write_det_db(tmp_path / "d.json", det_db)
    write_det_db_classes(tmp_path / "d.json", {k: [1 if int(k[-6:]) < 5 else 2] for k in det_db})
    assert main(["track", "--det-db", str(tmp_path / "d.json"), "--out", str(tmp_path / "t.txt")]) == 0
    tracks = read_mot(tmp_path / "t.txt")
    assert {int(c): sorted(set(tracks.id[tracks.cls == c].tolist())) for c in (1, 2)} == {1: [1], 2: [2]}
    (tmp_path / "d.classes.json").unlink()  # without classes the same boxes are one track, class -1
    assert main(["track", "--det-db", str(tmp_path / "d.json"), "--out", str(tmp_path / "t2.txt")]) == 0
    plain = read_mot(tmp_path / "t2.txt")
    assert set(plain.id.tolist()) == {1} and set(plain.cls.tolist()) == {-1}


def test_a_sidecar_that_does_not_match_its_det_db_is_refused_with_the_key(tmp_path, capsys):
    from services.evaluator.doctor import run_doctor

    det_db = {
        det_db_key("s", 1): np.array([[1.0, 1, 5, 5, 0.9], [9, 9, 5, 5, 0.8]]),
        det_db_key("s", 2): np.zeros((0, 5)),
    }
    write_det_db(tmp_path / "d.json", det_db)
    for sidecar, needle in [({det_db_key("s", 1): [1], det_db_key("s", 2): []}, "1 classes for 2 det_db lines"),
                            ({det_db_key("s", 1): [1, 2]}, "its classes sidecar does not")]:  # fmt: skip
        (tmp_path / "d.classes.json").write_text(json.dumps(sidecar))
        assert main(["track", "--det-db", str(tmp_path / "d.json"), "--out", str(tmp_path / "t.txt")]) == 2
        err = capsys.readouterr().err
        assert needle in err and "s/img1/00000" in err and len(err.strip().splitlines()) == 1, err
        codes = [f.code for f in run_doctor(det_db_path=tmp_path / "d.json", sequence="s").findings]
        assert "DETDB_CLASSES_MISMATCH" in codes


def test_scores_below_the_threshold_are_said_not_silently_empty(tmp_path, capsys):
    rng = np.random.default_rng(1)
    det_db = {det_db_key("s", f): np.column_stack([rng.uniform(50, 60, (3, 2)), np.full((3, 2), 30.0),
                                                   np.full(3, 0.35)]) for f in range(1, 20)}  # fmt: skip
    write_det_db(tmp_path / "d.json", det_db)
    assert main(["track", "--det-db", str(tmp_path / "d.json"), "--out", str(tmp_path / "t.txt")]) == 0
    err = capsys.readouterr().err
    assert "0 of 57 det_db boxes reach bytetrack's start threshold 0.5" in err
    assert "warning: no tracks from 57 det_db boxes: lower score_threshold (CLI --score-threshold, now 0.5)" in err
    assert "e.g. to 0.35" in err
    assert main(["track", "--det-db", str(tmp_path / "d.json"), "--score-threshold", "0.3",
                 "--out", str(tmp_path / "t.txt")]) == 0  # fmt: skip
    assert "warning" not in capsys.readouterr().err and len(read_mot(tmp_path / "t.txt")) > 0
