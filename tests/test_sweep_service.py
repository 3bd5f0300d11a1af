"""Sweeps on the real stack (gateway + two Celery workers on Redis): a 3x3 grid over one det_db, the
leaderboard, downloads and plots; a child that fails in its worker fails alone; bad grids are refused."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
import torch

from services.tracker.motrv2.config import MOTRv2Config
from services.tracker.motrv2.training.weights import fresh_model
from shared.synth import render_scene
from tests.stack import Stack, upload

pytestmark = pytest.mark.service


def parent_run(stack: Stack, scene) -> str:
    run = upload(stack, scene.video, "court")
    assert stack.wait_stage(run, "detect")["stages"]["detect"]["state"] == "succeeded"
    with open(scene.gt_txt, "rb") as handle:
        assert httpx.post(f"{stack.url}/runs/{run}/gt", files={"file": ("gt.txt", handle)}).status_code == 201
    return run


def wait_sweep(stack: Stack, sweep: str, timeout: float = 300) -> dict:
    return stack.poll(f"/sweeps/{sweep}", lambda body: body["state"] in ("succeeded", "failed"), timeout)


def test_three_by_three_sweep_shares_workers_and_reads_the_det_db(stack, tmp_path):
    scene = render_scene(tmp_path / "clip", frames=60, seed=1, size=(640, 360))
    stack.start_gateway()
    stack.start_worker("w1")
    stack.start_worker("w2")
    run = parent_run(stack, scene)
    grid = {"score_threshold": [0.2, 0.9, 0.97], "minimum_consecutive_frames": [1, 10, 40]}
    for bad, needle in (({"bogus_knob": [1]}, "bogus_knob"), ({"lost_track_buffer": [10, -5]}, "lost_track_buffer"),
                        ({"score_threshold": [2.0]}, "score_threshold")):  # fmt: skip
        answer = httpx.post(f"{stack.url}/sweeps", json={"run": run, "tracker": "bytetrack", "grid": bad})
        assert answer.status_code == 422 and needle in answer.json()["detail"], answer.text
    answer = httpx.post(f"{stack.url}/sweeps", json={"run": run, "tracker": "bytetrack", "grid": grid}, timeout=30)
    assert answer.status_code == 202, answer.text
    sweep = answer.json()["sweep"]
    assert answer.json()["status_url"] == f"/sweeps/{sweep}"
    body = wait_sweep(stack, sweep)
    assert body["state"] == "succeeded" and body["progress"] == {"done": 9, "total": 9}, body
    board = body["leaderboard"]
    assert len(board) == 9 and all(row["state"] == "succeeded" for row in board)
    hotas = [row["HOTA"] for row in board]
    assert hotas == sorted(hotas, reverse=True) and hotas[0] > 0.5 > hotas[-1]
    assert board[0]["params"] == {"score_threshold": 0.2, "minimum_consecutive_frames": 1}
    for row in board:  # children are ordinary runs: /eval works and agrees with the leaderboard
        child = httpx.get(f"{stack.url}/runs/{row['run']}").json()
        assert child["parent"] == run and child["stages"]["detect"]["attempts"] == 1
        metrics = httpx.get(f"{stack.url}/eval/{row['run']}").json()
        assert metrics["trackeval"]["HOTA"] == row["HOTA"]
        if row["HOTA"] > 0:  # the motion det_db's classes reach the tracks: ball HOTA on the leaderboard
            assert set(row["per_class"]) == {"player", "ball"}
            assert row["per_class"]["ball"]["HOTA"] == metrics["per_class"]["ball"]["trackeval"]["HOTA"]
    logs = "".join(p.read_text() for p in stack.logs.glob("w*.log"))
    assert logs.count("Task detector.detect[") == 2  # received + succeeded: the parent's only
    assert logs.count("Task tracker.track[") >= 9
    received = {name for name in ("w1", "w2") if "tracker.track" in (stack.logs / f"{name}.log").read_text()}
    assert received == {"w1", "w2"}  # both workers took part of the grid
    rows = list(csv.DictReader(io.StringIO(httpx.get(f"{stack.url}/sweeps/{sweep}/leaderboard.csv").text)))
    assert [r["run"] for r in rows] == [r["run"] for r in board] and rows[0]["rank"] == "1"
    assert float(rows[0]["ball HOTA"]) == board[0]["per_class"]["ball"]["HOTA"]
    assert httpx.get(f"{stack.url}/sweeps/{sweep}/leaderboard.json").json() == board
    for name in ("heatmap", "ranked"):
        plot = httpx.get(f"{stack.url}/sweeps/{sweep}/plots/{name}.png", timeout=30)
        assert plot.status_code == 200 and plot.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert httpx.get(f"{stack.url}/sweeps/0123456789abcdef").status_code == 404


def test_a_child_that_fails_in_its_worker_fails_alone(stack, tmp_path):
    scene = render_scene(tmp_path / "clip", frames=2, seed=4, size=(256, 144))
    stack.root.mkdir(parents=True, exist_ok=True)
    small = MOTRv2Config(enc_layers=1, dec_layers=2, dim_feedforward=256)
    torch.save({"model": fresh_model(small).state_dict()}, stack.root / "good.pth")
    (stack.root / "broken.pth").write_bytes(b"not a checkpoint at all")  # passes the request, fails the worker
    stack.env["MOTPIPE_VISIBILITY_TIMEOUT_S"] = "900"  # CPU MOTRv2 outlasts the short default of these tests
    stack.start_gateway()
    stack.start_worker("w1")
    run = parent_run(stack, scene)
    body = {"run": run, "tracker": "motrv2", "weights": ["good.pth", "broken.pth"],
            "grid": {"score_threshold": [0.3]}, "search": None}  # fmt: skip
    answer = httpx.post(f"{stack.url}/sweeps", json=body, timeout=30)
    assert answer.status_code == 202, answer.text
    result = wait_sweep(stack, answer.json()["sweep"], timeout=400)
    states = {row["params"]["weights"].rsplit("/", 1)[1]: row for row in result["leaderboard"]}
    assert states["good.pth"]["state"] == "succeeded" and states["good.pth"]["HOTA"] is not None
    assert (
        states["broken.pth"]["state"] == "failed"
        and "not a loadable MOTRv2 checkpoint" in states["broken.pth"]["error"]
    )
    assert result["state"] == "succeeded" and result["failed"][0]["run"] == states["broken.pth"]["run"]
