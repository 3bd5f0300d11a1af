"""The motrv2 tracker end to end: a checkpoint written by torch.save goes through the CLI and gives
the same tracks as the in-process loop."""

import argparse
import json

import numpy as np
import pytest
import torch

from services.gateway.cli import main
from services.tracker.engine import build_tracker, run_tracking
from services.tracker.motrv2.checkpoint import load_model
from shared.formats.det_db import det_db_key, read_det_db, write_det_db
from shared.formats.mot_txt import read_mot
from shared.frames import open_frames
from shared.schemas import TrackOptions
from shared.synth import render_scene


@pytest.fixture(scope="module")
def motrv2_case(shared_dir, param_fill, tmp_path_factory):
    """A 2-frame synthetic clip, a det_db of GT-like proposals and a filled 2-class checkpoint."""
    fill = param_fill
    manifest = json.loads((shared_dir / "reference" / "motrv2" / "manifest_official.json").read_text())
    folder = tmp_path_factory.mktemp("motrv2")
    state = {}
    for name, shape, _ in manifest:
        shape = [2, *shape[1:]] if name.startswith("class_embed.") else shape
        alias = (
            name.replace("bbox_embed.", "transformer.decoder.bbox_embed.", 1)
            if name.startswith("bbox_embed.")
            else name
        )
        state[name] = torch.from_numpy(fill.fill_value(alias, shape))
    checkpoint = folder / "motrv2_ball.pth"
    torch.save(
        {"model": state, "args": argparse.Namespace(dataset_file="e2e_volleyball_ball", num_queries=10)}, checkpoint
    )
    scene = render_scene(folder, frames=2, seed=4, size=(320, 180), name="clip")
    rng = np.random.default_rng(0)
    det_db = {}
    for f in (1, 2):
        boxes = scene.gt.boxes[scene.gt.frame == f]
        det_db[det_db_key("clip", f)] = np.column_stack(
            [boxes + rng.normal(0, 1, boxes.shape), rng.uniform(0.5, 0.9, len(boxes))]
        )
    write_det_db(folder / "det_db.json", det_db)
    return folder, scene, checkpoint


def test_cli_equals_the_in_process_loop(motrv2_case):
    folder, scene, checkpoint = motrv2_case
    out = folder / "tracks.txt"
    assert main(["track", "--tracker", "motrv2", "--weights", str(checkpoint), "--det-db", str(folder / "det_db.json"),
                 "--frames", str(scene.video), "--score-threshold", "0.1", "--update-score-threshold", "0.1",
                 "--area-threshold", "0", "--out", str(out), "--device", "cpu"]) == 0  # fmt: skip
    cli = read_mot(out)
    options = TrackOptions(tracker="motrv2", weights=str(checkpoint), score_threshold=0.1,
                           options={"update_score_threshold": 0.1, "area_threshold": 0.0})  # fmt: skip
    tracker = build_tracker(options, "cpu", load_model(checkpoint))
    direct = run_tracking(
        read_det_db(folder / "det_db.json"), options, frames=open_frames(scene.video), tracker=tracker
    )
    assert len(direct) > 0, "the filled model should keep some proposals above 0.1"
    direct = direct.select(np.lexsort((direct.id, direct.frame)))  # the file is written sorted
    assert cli.id.tolist() == direct.id.tolist() and cli.frame.tolist() == direct.frame.tolist()
    np.testing.assert_allclose(cli.boxes, direct.boxes, atol=0.01)
    assert set(cli.cls.tolist()) <= {1, 2}  # labels of the 2-class model, 1-based


def test_missing_frames_or_weights_are_clear_errors(motrv2_case, capsys):
    folder, scene, checkpoint = motrv2_case
    assert main(["track", "--tracker", "motrv2", "--weights", str(checkpoint), "--det-db", str(folder / "det_db.json"),
                 "--out", str(folder / "x.txt")]) == 2  # fmt: skip
    assert "needs the frames" in capsys.readouterr().err
    assert main(["track", "--tracker", "motrv2", "--det-db", str(folder / "det_db.json"), "--frames", str(scene.video),
                 "--out", str(folder / "x.txt")]) == 2  # fmt: skip
    assert "needs --weights" in capsys.readouterr().err


def test_demo_runs_end_to_end_with_motrv2(motrv2_case, tmp_path):
    _, _, checkpoint = motrv2_case
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--frames", "2", "--tracker", "motrv2", "--weights", str(checkpoint)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["trackeval"]["GT_Dets"] == 10 and (out / "plots" / "dashboard.png").is_file()
    assert (out / "tracks.txt").is_file()


def test_frames_prepared_ahead_give_the_tracks_of_frames_prepared_in_step(motrv2_case, monkeypatch):
    """run_tracking resizes frames on other threads (`prepare_frame`) and normalises them on the device: the
    tracks equal those of each raw frame handed to the tracker as it comes."""
    import services.tracker.engine as engine

    folder, scene, checkpoint = motrv2_case
    options = TrackOptions(tracker="motrv2", weights=str(checkpoint), score_threshold=0.1,
                           options={"update_score_threshold": 0.1, "area_threshold": 0.0})  # fmt: skip
    det_db = read_det_db(folder / "det_db.json")
    monkeypatch.setattr(engine, "frame_workers", lambda device: 3)
    ahead = run_tracking(det_db, options, frames=open_frames(scene.video),
                         tracker=build_tracker(options, "cpu", load_model(checkpoint)))  # fmt: skip
    tracker = build_tracker(options, "cpu", load_model(checkpoint))
    in_step = [tracker.update(det_db[det_db_key("clip", n)], image) for n, image in open_frames(scene.video)]
    rows = np.concatenate([r for r in in_step if len(r)])
    assert len(ahead) == len(rows) > 0
    assert ahead.id.tolist() == rows[:, 0].astype(int).tolist()
    assert np.array_equal(ahead.boxes, rows[:, 1:5]) and np.array_equal(ahead.conf, rows[:, 5])
