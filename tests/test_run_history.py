"""Experiments keep their history: tracking or detecting again makes a child run (the parent's tracks and
metrics never change), runs have names, tags and notes, and deleting one leaves its children working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.gateway.cli import main
from tests.test_api import TOKEN, api, stored_run  # noqa: F401 - fixtures


def _tracked(client, store, run: str, scene) -> None:
    """The run as if its track stage finished, with ground truth and metrics."""
    folder = store.run_dir(run)
    (folder / "tracks.txt").write_bytes(scene.gt_txt.read_bytes())
    store.start_stage(run, "track")
    store.succeed_stage(run, "track", ["tracks.txt"])
    assert client.post(f"/runs/{run}/gt", files={"file": ("gt.txt", scene.gt_txt.read_bytes())}).status_code == 201
    assert client.get(f"/eval/{run}").status_code == 200


def test_tracking_again_makes_a_child_and_never_touches_the_parent(api, stored_run, scene):  # noqa: F811
    client, store, _ = api
    _tracked(client, store, stored_run, scene)
    folder = store.run_dir(stored_run)
    before = {name: (folder / name).read_bytes() for name in ("tracks.txt", "metrics.json")}
    answer = client.post("/track", json={"run": stored_run, "tracker": "bytetrack", "score_threshold": 0.4})
    assert answer.status_code == 202, answer.text
    child = answer.json()["run"]
    assert child != stored_run and answer.json()["parent"] == stored_run
    assert answer.json()["status_url"] == f"/runs/{child}"
    assert {name: (folder / name).read_bytes() for name in before} == before
    parent, record = client.get(f"/runs/{stored_run}").json(), client.get(f"/runs/{child}").json()
    assert parent["children"] == [child] and record["parent"] == stored_run
    assert record["name"] == "clip.mp4 · bytetrack score_threshold=0.4" and parent["name"] == "clip.mp4"
    assert record["stages"]["detect"]["state"] == "succeeded" and record["stages"]["track"]["state"] == "pending"
    child_db, parent_db = store.run_dir(child) / "det_db.json", folder / "det_db.json"
    assert child_db.stat().st_ino == parent_db.stat().st_ino  # a hard link, not a second copy
    assert store.gt_file(child) == folder / "gt.txt"  # the parent's ground truth, read through it


def test_detecting_again_makes_a_child_on_the_same_video(api, stored_run):  # noqa: F811
    client, store, _ = api
    answer = client.post(f"/runs/{stored_run}/detect", json={"detector": "motion", "score_threshold": 0.5})
    assert answer.status_code == 202, answer.text
    child = answer.json()["run"]
    assert answer.json()["parent"] == stored_run
    record = client.get(f"/runs/{child}").json()
    assert (
        record["stages"]["detect"]["state"] == "pending"
        and record["stages"]["detect"]["params"]["score_threshold"] == 0.5
    )
    video, parent_video = store.run_dir(child) / "input.mp4", store.run_dir(stored_run) / "input.mp4"
    assert video.stat().st_ino == parent_video.stat().st_ino and record["inputs"]["frames"].endswith("input.mp4")
    assert record["name"] == "clip.mp4 · motion score_threshold=0.5"
    bad = client.post(f"/runs/{stored_run}/detect", json={"detector": "nope"})
    assert bad.status_code == 400 and client.get(f"/runs/{stored_run}").json()["children"] == [child]


def test_names_tags_and_notes_are_checked_and_kept(api, stored_run):  # noqa: F811
    client, store, _ = api
    answer = client.patch(f"/runs/{stored_run}", json={"name": "match 3, moderate", "tags": ["ball", "ball", "v2"]})
    assert answer.status_code == 200 and answer.json()["tags"] == ["ball", "v2"], answer.text
    assert client.patch(f"/runs/{stored_run}", json={"note": "fine-tune 2"}).json()["name"] == "match 3, moderate"
    assert json.loads((store.run_dir(stored_run) / "run.json").read_text())["note"] == "fine-tune 2"
    for body in ({"name": "x" * 10_000_000}, {"tags": [str(i) for i in range(10_000)]}, {"tags": ["x" * 65]},
                 {"note": "x" * 10_001}, {"colour": "red"}, {"name": " "}):  # fmt: skip
        assert client.patch(f"/runs/{stored_run}", json=body).status_code == 422
    assert client.get(f"/runs/{stored_run}").json()["note"] == "fine-tune 2"
    assert "cannot be blank" in client.patch(f"/runs/{stored_run}", json={"name": ""}).text


def test_deleting_a_parent_leaves_its_children_working(api, stored_run, scene):  # noqa: F811
    client, store, _ = api
    _tracked(client, store, stored_run, scene)
    child = client.post("/track", json={"run": stored_run, "score_threshold": 0.3}).json()["run"]
    answer = client.delete(f"/runs/{child}")  # its track stage is queued
    assert answer.status_code == 409 and "track" in answer.json()["detail"]
    assert client.delete(f"/runs/{stored_run}").status_code == 204
    assert client.get(f"/runs/{stored_run}").status_code == 404
    assert (store.run_dir(child) / "gt.txt").is_file() and (store.run_dir(child) / "det_db.json").is_file()
    assert client.get(f"/runs/{child}").json()["artifacts"]["gt.txt"]["bytes"] > 0


def test_ground_truth_uploaded_to_a_parent_reaches_children_without_their_own(api, stored_run, scene):  # noqa: F811
    client, store, _ = api
    _tracked(client, store, stored_run, scene)
    child = client.post("/track", json={"run": stored_run}).json()["run"]
    store.start_stage(child, "track")
    (store.run_dir(child) / "tracks.txt").write_bytes(scene.gt_txt.read_bytes())
    store.succeed_stage(child, "track", ["tracks.txt"])
    assert client.get(f"/eval/{child}").json()["trackeval"]["HOTA"] == pytest.approx(1.0)
    half = b"".join(line + b"\n" for line in scene.gt_txt.read_bytes().splitlines() if int(line.split(b",")[0]) <= 30)
    assert client.post(f"/runs/{stored_run}/gt", files={"file": ("gt.txt", half)}).status_code == 201
    assert "metrics.json" not in client.get(f"/runs/{child}").json()["artifacts"]  # stale, dropped
    assert client.get(f"/eval/{child}").json()["trackeval"]["HOTA"] < 0.9


def test_the_runs_command_works_on_a_data_root_without_a_server(api, stored_run, capsys):  # noqa: F811
    _, store, settings = api
    root = ["runs", "--data-root", str(settings.data_root)]
    assert main([*root, "rename", stored_run, "serve 1"]) == 0
    assert main([*root, "tag", stored_run, "ball", "night"]) == 0
    assert main([*root, "tag", stored_run, "night", "--remove"]) == 0
    assert main([*root, "list"]) == 0
    assert f"{stored_run}" in capsys.readouterr().out
    assert store.get(stored_run).name == "serve 1" and store.get(stored_run).tags == ["ball"]
    assert main([*root, "rename", stored_run, "x" * 300]) == 2
    assert main([*root, "delete", stored_run]) == 0 and store.list() == []


def test_the_cli_creates_no_data_root_where_it_is_started(tmp_path):
    """`motpipe --help` imports every task module; neither it nor a `runs` command with a mistyped data root
    may leave a `motpipe-data` folder (file broker, index) in the working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTPIPE_")}
    motpipe = [sys.executable, "-m", "services.gateway.cli"]
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    assert subprocess.run([*motpipe, "--help"], cwd=tmp_path, env=env, capture_output=True).returncode == 0
    listed = subprocess.run([*motpipe, "runs", "list"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert listed.returncode == 1 and f"no data root at {tmp_path / 'motpipe-data'}" in listed.stderr
    assert list(tmp_path.iterdir()) == []
