"""Per-class and annotated-frames evaluation against TrackEval's own Evaluator on files it reads itself."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from services.evaluator.evaluate import evaluate, parse_frame_list
from services.evaluator.metrics.hota import ARRAYS
from shared.errors import InputError
from shared.formats.mot_txt import MotTable, write_mot

trackeval = pytest.importorskip("trackeval")


def run_trackeval(tmp_path, gt: MotTable, pred: MotTable, frames: int) -> dict:
    """TrackEval 1.3's Evaluator + MotChallenge2DBox (no preprocessing) on a layout written here. TrackEval
    accepts only its pedestrian class (1) in tracker files, so each call gets one class's rows labelled 1."""
    pred = MotTable(pred.frame, pred.id, pred.boxes, pred.conf, np.ones_like(pred.cls), pred.vis)
    seq, bench = "seq", "CLS"
    seq_dir = tmp_path / "gt" / f"{bench}-train" / seq
    (seq_dir / "gt").mkdir(parents=True)
    write_mot(seq_dir / "gt" / "gt.txt", gt, columns=9)
    (seq_dir / "seqinfo.ini").write_text(f"[Sequence]\nname={seq}\nseqLength={frames}\n")
    (tmp_path / "seqmap.txt").write_text(f"name\n{seq}\n")
    data = tmp_path / "trackers" / f"{bench}-train" / "t" / "data"
    data.mkdir(parents=True)
    write_mot(data / f"{seq}.txt", pred)
    dataset = trackeval.datasets.MotChallenge2DBox({
        "GT_FOLDER": str(tmp_path / "gt"), "TRACKERS_FOLDER": str(tmp_path / "trackers"), "BENCHMARK": bench,
        "SPLIT_TO_EVAL": "train", "SEQMAP_FILE": str(tmp_path / "seqmap.txt"), "TRACKERS_TO_EVAL": ["t"],
        "DO_PREPROC": False, "PRINT_CONFIG": False,
    })  # fmt: skip
    evaluator = trackeval.Evaluator({"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
                                     "TIME_PROGRESS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
                                     "PLOT_CURVES": False, "DISPLAY_LESS_PROGRESS": True})  # fmt: skip
    quiet = {"PRINT_CONFIG": False}
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(quiet), trackeval.metrics.Identity(quiet)]
    with contextlib.redirect_stdout(io.StringIO()):
        results, _ = evaluator.evaluate([dataset], metrics)
    return results["MotChallenge2DBox"]["t"]["COMBINED_SEQ"]["pedestrian"]


def assert_equal_to_trackeval(ours: dict, theirs: dict) -> None:
    for block in ("CLEAR", "Identity"):
        for name, value in theirs[block].items():
            if name in ours:
                assert ours[name] == pytest.approx(float(value), rel=1e-12, abs=1e-12), name
    for name in ARRAYS:
        np.testing.assert_allclose(ours[f"{name}_alpha"], theirs["HOTA"][name], rtol=1e-12, atol=1e-12)


def two_class_case(frames: int = 60, seed: int = 0) -> tuple[MotTable, MotTable]:
    """Four players (class 1) and a ball (class 2); predictions jittered, with an id switch, misses and a
    false positive, each row carrying its class in the 8th column as our trackers write it."""
    rng = np.random.default_rng(seed)
    gt_rows, pred_rows = [], []
    for f in range(1, frames + 1):
        for obj in range(1, 6):
            cls = 2 if obj == 5 else 1
            w, h = (12, 12) if cls == 2 else (40, 90)
            x, y = 60 * obj + 2 * f, 100 + 30 * np.sin(f / 7 + obj)
            gt_rows.append([f, obj, x, y, w, h, 1, cls, 1, -1])
            if rng.random() < 0.1:
                continue  # missed
            track = obj if not (obj == 2 and f > 30) else 9  # an id switch half-way
            jitter = rng.normal(0, 2 if cls == 1 else 3, 4)
            pred_rows.append([f, track, x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3],
                              rng.random(), cls, -1, -1])  # fmt: skip
        if f % 10 == 0:
            pred_rows.append([f, 50 + f, 500, 300, 40, 90, 0.3, 1, -1, -1])
    gt, pred = np.array(gt_rows), np.array(pred_rows)
    gt[:, 2:6], pred[:, 2:6] = gt[:, 2:6].round(2), pred[:, 2:6].round(2)  # what the files hold (%.2f)
    return MotTable.from_matrix(gt), MotTable.from_matrix(pred)


def test_per_class_blocks_equal_trackeval_per_class(tmp_path):
    gt, pred = two_class_case()
    report = evaluate(gt, pred)
    assert set(report.per_class) == {"player", "ball"}
    for _index, (name, cls) in enumerate((("player", 1), ("ball", 2))):
        block = report.per_class[name]
        assert set(block) == {"trackeval", "framewise", "losses", "per_frame"}
        theirs = run_trackeval(tmp_path / name, gt.select(gt.cls == cls), pred.select(pred.cls == cls), 60)
        assert_equal_to_trackeval(block["trackeval"], theirs)
    # the top level stays all classes together
    assert_equal_to_trackeval(report.trackeval, run_trackeval(tmp_path / "all", gt, pred, 60))
    assert report.per_class["ball"]["trackeval"]["GT_IDs"] == 1


def test_annotated_frames_equal_trackeval_on_those_frames_only(tmp_path):
    gt, pred = two_class_case(frames=60, seed=1)
    annotated = np.arange(1, 61)[(np.arange(1, 61) % 4 == 1) | (np.arange(1, 61) > 50)]
    sparse_gt = gt.select(np.isin(gt.frame, annotated))
    report = evaluate(sparse_gt, pred, annotated_only=True)
    # TrackEval on a sequence made of just those frames (renumbered 1..K)
    rank = {int(f): i + 1 for i, f in enumerate(annotated)}

    def only(table: MotTable) -> MotTable:
        kept = table.select(np.isin(table.frame, annotated))
        frames = np.array([rank[int(f)] for f in kept.frame], dtype=np.int64)
        return MotTable(frames, kept.id, kept.boxes, kept.conf, kept.cls, kept.vis)

    assert_equal_to_trackeval(
        report.trackeval, run_trackeval(tmp_path / "a", only(sparse_gt), only(pred), len(annotated))
    )
    assert report.frames.startswith("annotated") and str(len(annotated)) in report.frames
    # the default counts every frame: predictions on unannotated frames are false positives there
    full = evaluate(sparse_gt, pred)
    assert full.trackeval["CLR_FP"] > report.trackeval["CLR_FP"] and full.frames == "all"
    listed = evaluate(sparse_gt, pred, annotated_frames=annotated.tolist())
    assert listed.trackeval["HOTA"] == report.trackeval["HOTA"]
    assert parse_frame_list("1-3, 7") == [1, 2, 3, 7]
    with pytest.raises(InputError, match="'x-2'"):
        parse_frame_list("x-2")


def test_class_agnostic_predictions_get_a_note_and_single_class_pays_nothing():
    gt, pred = two_class_case(frames=20)
    agnostic = MotTable(pred.frame, pred.id, pred.boxes, pred.conf, np.full_like(pred.cls, -1), pred.vis)
    report = evaluate(gt, agnostic)
    assert report.per_class is None and "no class" in report.notes[0]
    players = gt.select(gt.cls == 1)
    single = evaluate(players, pred.select(pred.cls == 1))
    assert single.per_class is None and single.notes == []


def test_one_class_annotated_only_scores_the_frames_annotated_for_any_class():
    """`--classes 2 --annotated-only` equals the ball's block of the all-class evaluation: a frame annotated
    without a ball says there was none, so a ball predicted there is a false positive in both."""
    gt, pred = two_class_case(frames=60, seed=2)
    sparse = gt.select((gt.frame % 3 == 0) & ((gt.cls == 1) | (gt.frame % 2 == 0)))  # the ball on half of them
    ball_alone = evaluate(sparse, pred, classes=[2], annotated_only=True)
    assert ball_alone.trackeval == evaluate(sparse, pred, annotated_only=True).per_class["ball"]["trackeval"]
    assert ball_alone.frames.endswith(": 20 frames")
