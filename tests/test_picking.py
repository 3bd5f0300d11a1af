"""Picking the frames worth annotating (#26 item 1): pure functions over detections, tracks, ground-truth
frames and review events. On a synthetic clip with a weakened detector, `disagree` finds the frames where the
tracks are wrong several times more often than evenly spaced picks; no strategy but `errors` picks a frame
that already has ground truth, `errors` picks only such frames; picks keep their distance and say why."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.evaluator.events import clear_events
from services.evaluator.picking import pick_frames, select, uniform
from services.tracker.bytetrack import ByteTrack
from shared.formats.mot_txt import MotTable
from shared.synth import render_scene


@pytest.fixture(scope="module")
def weakened(tmp_path_factory):
    """600 frames of players (640x360), detected by a weakened detector: each player's box is badly placed
    (shifted by most of its width, still confident) for a few frames twice and missing once, plus a dozen
    confident boxes on empty sand; tracked by ByteTrack. Returns (gt, detections, tracks)."""
    scene = render_scene(tmp_path_factory.mktemp("pick"), frames=600, seed=5, size=(640, 360))
    gt = scene.gt.select(scene.gt.cls == 1)
    rng = np.random.default_rng(0)
    keep = np.ones(len(gt), bool)
    boxes = gt.boxes + rng.normal(0, 1.0, gt.boxes.shape)
    conf = rng.uniform(0.55, 0.95, len(gt))
    for player in np.unique(gt.id):
        for start in rng.choice(600, 2, replace=False):
            bad = (gt.id == player) & (gt.frame >= start) & (gt.frame < start + rng.integers(2, 5))
            boxes[bad, 0] += 0.8 * gt.boxes[bad, 2]
            conf[bad] = rng.uniform(0.75, 0.95, bad.sum())
        start = rng.integers(1, 600)
        keep &= ~((gt.id == player) & (gt.frame >= start) & (gt.frame < start + rng.integers(3, 8)))
    clutter = np.sort(rng.choice(np.arange(1, 601), 12, replace=False))
    frame = np.concatenate([gt.frame[keep], clutter])
    box = np.concatenate([boxes[keep], np.column_stack([rng.uniform(0, 600, 12), rng.uniform(0, 320, 12),
                                                        np.full(12, 20.0), np.full(12, 30.0)])])  # fmt: skip
    order = np.argsort(frame, kind="stable")
    detections = MotTable(frame=frame[order], id=np.full(len(frame), -1), boxes=box[order],
                          conf=np.concatenate([conf[keep], rng.uniform(0.72, 0.9, 12)])[order],
                          cls=np.ones(len(frame), dtype=np.int64), vis=np.full(len(frame), -1.0))  # fmt: skip
    tracker, rows = ByteTrack(), []
    for number in range(1, 601):
        here = detections.frame == number
        for row in tracker.update(np.column_stack([detections.boxes[here], detections.conf[here],
                                                   detections.cls[here]])):  # fmt: skip
            rows.append([number, *row[:6], row[6], -1, -1])
    return gt, detections, MotTable.from_matrix(np.array(rows))


def test_disagree_finds_the_wrong_frames_far_more_often_than_even_spacing(weakened):
    gt, detections, tracks = weakened
    wrong = {e["frame"] for e in clear_events(gt, tracks) if e["kind"] in ("fn", "fp", "idsw")}
    assert 0.03 < len(wrong) / 600 < 0.25, len(wrong)  # errors are a minority: even spacing finds few
    disagree = pick_frames("disagree", 20, 600, set(), 0.5, detections, tracks)
    even = pick_frames("uniform", len(disagree), 600, set(), 0.5)
    share = {name: sum(p.frame in wrong for p in picks) / len(picks) for name, picks in
             (("disagree", disagree), ("uniform", even))}  # fmt: skip
    print(
        f"frames with FN/FP/IDSW: disagree {share['disagree']:.2f} of {len(disagree)} picks, "
        f"uniform {share['uniform']:.2f} of {len(even)}"
    )
    assert len(disagree) >= 8 and share["disagree"] >= 0.4
    assert share["disagree"] >= 3 * share["uniform"]
    assert all("confident detection" in p.reason or "no detection supports" in p.reason for p in disagree)


@pytest.mark.parametrize("strategy", ["uncertain", "disagree", "uniform"])
def test_no_pick_has_ground_truth_already_and_picks_keep_their_distance(weakened, strategy):
    _, detections, tracks = weakened
    annotated = set(range(1, 601, 4))  # a quarter of the frames, spread over the clip
    picks = pick_frames(strategy, 25, 600, annotated, 0.5, detections, tracks, min_gap=15)
    assert picks and not {p.frame for p in picks} & annotated
    frames = [p.frame for p in picks]
    assert frames == sorted(frames) and all(b - a >= 15 for a, b in zip(frames, frames[1:], strict=False))
    assert all(p.reason for p in picks)


def test_errors_picks_annotated_frames_by_their_events():
    events = [{"frame": 10, "kind": "idsw"}, {"frame": 10, "kind": "fn"}, {"frame": 11, "kind": "fn"},
              {"frame": 40, "kind": "fp"}, {"frame": 70, "kind": "frag"}, {"frame": 90, "kind": "fn"}]  # fmt: skip
    picks = pick_frames("errors", 5, 100, {10, 11, 40, 70}, 0.5, events=events, min_gap=15)
    assert [(p.frame, p.reason) for p in picks] == [(10, "1 ID switch, 1 miss"), (40, "1 false positive")]


def test_selection_and_even_spacing_rules():
    signals = {5: (1.0, "a"), 9: (3.0, "b"), 30: (2.0, "c"), 31: (2.0, "d"), 60: (5.0, "e")}
    assert [p.frame for p in select(signals, 10, 15, exclude={60})] == [9, 30]  # 5 and 31 are too close
    assert [p.frame for p in select(signals, 1, 15, exclude=set())] == [60]
    picks = uniform(100, 5, 15, exclude={1})
    assert [p.frame for p in picks] == [2, 26, 51, 76, 100] and "one in every 20 frames" in picks[0].reason
    assert len(uniform(100, 50, 15, exclude=set())) == 7  # the gap wins over the count
    with pytest.raises(ValueError, match="unknown strategy 'random'"):
        pick_frames("random", 3, 100, set(), 0.5)


def test_the_label_pick_command_reads_a_run_of_a_data_root(weakened, tmp_path, capsys):
    """`motpipe label pick` on a run: its det_db, tracks and ground truth (on every fourth frame) read from the
    folder; new-frame strategies avoid the annotated frames, `errors` keeps to them; a run without tracks is
    told what to do."""
    from services.gateway.cli import main
    from shared.formats.conversions import mot_to_det_db
    from shared.formats.det_db import write_det_db
    from shared.formats.mot_txt import write_mot
    from shared.run_store import RunStore

    gt, detections, tracks = weakened
    root = tmp_path / "data"
    store = RunStore(root)
    run = store.create({"upload": "clip.mp4"}, name="weak").run
    folder = store.run_dir(run)
    write_det_db(folder / "det_db.json", mot_to_det_db(detections, "clip", 600))
    store.start_stage(run, "detect", {"detector": "motion"})
    store.succeed_stage(run, "detect", ["det_db.json"], {"det_db": {"frames": 600}})
    bare = store.create_tracking_child(run, "no tracks yet").run
    write_mot(folder / "tracks.txt", tracks)
    store.start_stage(run, "track", {"tracker": "bytetrack"})
    store.succeed_stage(run, "track", ["tracks.txt"])
    write_mot(folder / "gt.txt", gt.select(gt.frame % 4 == 1))
    command = ["label", "pick", "--run", run, "--data-root", str(root), "--frames", "6"]
    assert main([*command, "--pick", "disagree"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "6 frames picked by disagree" and len(lines) == 7
    frames = [int(line.split()[0]) for line in lines[:-1]]
    assert all(f % 4 != 1 for f in frames) and "confident detection" in lines[0]
    assert main([*command, "--pick", "errors", "--json"]) == 0
    picks = json.loads(capsys.readouterr().out)
    assert picks and all(p["frame"] % 4 == 1 for p in picks)
    assert any(word in picks[0]["reason"] for word in ("miss", "false positive", "ID switch"))
    assert main(["label", "pick", "--run", bare, "--data-root", str(root), "--pick", "uncertain"]) == 2
    assert "has no tracks" in capsys.readouterr().err
