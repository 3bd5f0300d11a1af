"""Error events equal TrackEval's CLEAR counts: on the reference cases, generated sequences (id swaps, misses,
false positives, ties), crowded scenes, per class and annotated-only; and each event is where it says."""

from __future__ import annotations

import json

import numpy as np
import pytest

from services.evaluator.evaluate import evaluate
from services.evaluator.events import clear_events, events_report
from shared.formats.mot_txt import MotTable, read_mot
from tests.test_per_class_eval import two_class_case
from tests.test_trackeval_parity import crowded_pair, oracle, random_pair


def counts_of(gt: MotTable, pred: MotTable) -> dict[str, int]:
    report = events_report(gt, pred)
    assert sum(report["counts"].values()) == len(report["events"])
    return report["counts"]


def expected(clear: dict) -> dict[str, int]:
    return {
        "fn": int(clear["CLR_FN"]),
        "fp": int(clear["CLR_FP"]),
        "idsw": int(clear["IDSW"]),
        "frag": int(clear["Frag"]),
    }


@pytest.mark.parametrize("case", ["tud_campus", "user_demo", "edge_id_swap"])
def test_reference_cases(shared_dir, case):
    folder = shared_dir / "reference" / "eval" / case
    clear = json.loads((folder / "expected.json").read_text())["trackeval"]["CLEAR"]
    assert counts_of(read_mot(folder / "gt.txt"), read_mot(folder / "pred.txt")) == expected(clear)


@pytest.mark.parametrize("seed", range(60))
def test_generated_sequences_equal_trackeval(seed):
    gt, pred = random_pair(np.random.default_rng(seed))
    assert counts_of(gt, pred) == expected(oracle(gt, pred))


@pytest.mark.parametrize("seed", range(6))
def test_crowded_scenes_with_ties_equal_trackeval(seed):
    gt, pred = crowded_pair(np.random.default_rng(seed))
    assert counts_of(gt, pred) == expected(oracle(gt, pred))


def test_per_class_and_annotated_only_equal_the_reports_blocks():
    gt, pred = two_class_case()
    report = evaluate(gt, pred)
    for name, cls in (("player", 1), ("ball", 2)):
        assert events_report(gt, pred, cls=cls)["counts"] == expected(report.per_class[name]["trackeval"])
    sparse = gt.select(gt.frame % 3 == 0)  # ground truth on every third frame
    annotated = evaluate(sparse, pred, annotated_only=True)
    got = events_report(sparse, pred, annotated_only=True)
    assert got["counts"] == expected(annotated.trackeval)
    assert {e["frame"] % 3 for e in got["events"]} == {0}  # the files' own frame numbers
    for name, cls in (("player", 1), ("ball", 2)):
        counts = events_report(sparse, pred, cls=cls, annotated_only=True)["counts"]
        assert counts == expected(annotated.per_class[name]["trackeval"])


@pytest.mark.parametrize("seed", range(20))
def test_the_kernels_matching_gives_the_same_events_as_the_numpy_matching(seed):
    """`motpipe eval --events` reads the events off the compiled kernel's matching (`with_events`), the API
    runs the numpy matching: event for event the same, on all classes, per class and annotated-only."""
    from services.evaluator.evaluate import evaluate_fields
    from services.evaluator.metrics import compiled

    if not compiled.available():
        pytest.skip("the compiled kernels are not built (no C compiler at install)")
    rng = np.random.default_rng(seed)
    gt, pred = random_pair(rng) if seed < 14 else crowded_pair(rng)
    if seed % 2:  # two classes, so the per-class and class-agnostic branches are taken too
        gt = MotTable(gt.frame, gt.id, gt.boxes, gt.conf, 1 + gt.id % 2, gt.vis)
        pred = MotTable(pred.frame, pred.id, pred.boxes, pred.conf, 1 + pred.id % 2, pred.vis)
    sparse = gt.select(gt.frame % 4 != 1)
    for table, classes, annotated in ((gt, None, False), (gt, [2], False), (sparse, None, True), (sparse, [1], True)):
        fields = evaluate_fields(table, pred, 0.5, classes, annotated, with_events=True)
        cls = classes[0] if classes else None
        assert fields["events"] == events_report(table, pred, cls=cls, annotated_only=annotated), (classes, annotated)
        assert fields["events"]["counts"] == expected(fields["trackeval"])


def test_an_id_switch_is_where_it_happens():
    gt, pred = two_class_case()  # GT object 2 is tracked as 2, then as 9 from frame 31
    switches = [e for e in clear_events(gt, pred) if e["kind"] == "idsw"]
    assert len(switches) == 1
    (switch,) = switches
    assert switch["gt_id"] == 2 and switch["prev_pred_id"] == 2 and switch["pred_id"] == 9 and switch["class"] == 1
    row = np.flatnonzero((gt.frame == switch["frame"]) & (gt.id == 2))[0]
    assert switch["frame"] >= 31 and switch["box"] == [float(v) for v in gt.boxes[row]]
    fps = [e for e in clear_events(gt, pred) if e["kind"] == "fp"]
    assert {e["pred_id"] for e in fps if e["frame"] % 10 == 0} >= {60, 70}  # the planted false positives
    assert all("score" in e and e["gt_id"] is None for e in fps)
    frames = [e["frame"] for e in clear_events(gt, pred)]
    assert frames == sorted(frames)


def test_empty_sides():
    gt, pred = two_class_case(frames=5)
    assert events_report(gt, MotTable.empty())["counts"] == {"fn": len(gt), "fp": 0, "idsw": 0, "frag": 0}
    assert events_report(MotTable.empty(), pred)["counts"] == {"fn": 0, "fp": len(pred), "idsw": 0, "frag": 0}
    from services.evaluator.evaluate import evaluate_fields

    for g, p in ((gt, MotTable.empty()), (MotTable.empty(), pred)):  # the kernel's path (`--events`) too
        assert evaluate_fields(g, p, with_events=True)["events"] == events_report(g, p)


def test_the_api_and_the_cli_give_the_same_events(tmp_path):
    from fastapi.testclient import TestClient

    from services.gateway.app import create
    from services.gateway.cli import main
    from shared.formats.mot_txt import write_mot
    from shared.run_store import RunStore
    from shared.settings import Settings

    gt, pred = two_class_case()
    store = RunStore(tmp_path / "data")
    run = store.create(name="two classes").run
    folder = store.run_dir(run)
    write_mot(folder / "gt.txt", gt)
    write_mot(folder / "tracks.txt", pred)
    store.start_stage(run, "track")
    store.succeed_stage(run, "track", ["tracks.txt"])
    client = TestClient(create(Settings(data_root=tmp_path / "data")))
    body = client.get(f"/eval/{run}/events").json()
    metrics = client.get(f"/eval/{run}").json()
    assert body["counts"] == expected(metrics["trackeval"]) and len(body["events"]) == sum(body["counts"].values())
    ball = client.get(f"/eval/{run}/events", params={"class": "ball"}).json()
    assert ball["counts"] == expected(metrics["per_class"]["ball"]["trackeval"])
    assert client.get(f"/eval/{run}/events", params={"class": "2"}).json() == ball
    window = client.get(f"/eval/{run}/events", params={"kind": "fp", "from": 20, "to": 40}).json()["events"]
    assert window and all(e["kind"] == "fp" and 20 <= e["frame"] <= 40 for e in window)
    assert len(window) == sum(1 for e in body["events"] if e["kind"] == "fp" and 20 <= e["frame"] <= 40)
    for bad in ({"class": "'; DROP"}, {"from": 0}, {"kind": "miss"}, {"to": -3}):
        assert client.get(f"/eval/{run}/events", params=bad).status_code == 422, bad
    out = tmp_path / "events.json"
    args = ["eval", "--gt", str(folder / "gt.txt"), "--pred", str(folder / "tracks.txt"), "--events", str(out)]
    assert main(args) == 0
    assert json.loads(out.read_text()) == body
    assert main([*args[:-2], "--classes", "2", "--events", str(out)]) == 0
    assert json.loads(out.read_text()) == ball
