"""The annotation loop against a real Label Studio (#26): push a run's picked frames (images uploaded into
Label Studio, tracks as predictions with `track_<id>` regions), submit annotations through Label Studio's API
as an annotator's browser does, pull them into the run's ground truth (ids kept, a drawn region a new id,
`annotated_only` scoring exactly the annotated frames); pushing twice adds nothing, pulling with nothing
finished or twice changes nothing; a bad token, a dead address and a project with another config are one
line on stderr, exit 2, and leave the run as it was."""

from __future__ import annotations

import shutil

import httpx
import numpy as np
import pytest

from services.evaluator.store import evaluate_run
from services.gateway.cli import main
from shared.formats.conversions import mot_to_det_db
from shared.formats.det_db import write_det_db
from shared.formats.mot_txt import read_mot, write_mot
from shared.run_store import RunStore
from shared.settings import get_settings
from shared.synth import render_scene
from tests.label_studio_server import start_label_studio


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    server = start_label_studio(tmp_path_factory.mktemp("ls"))
    yield server
    server.stop()


@pytest.fixture
def run(tmp_path):
    """A run of a 60-frame synthetic clip: its det_db and tracks (the clip's boxes, ids 1..), ground truth on
    every tenth frame."""
    scene = render_scene(tmp_path / "clip", frames=60, seed=3, size=(640, 360), name="match3")
    store = RunStore(tmp_path / "data")
    run = store.create(
        {
            "upload": "match3.mp4",
            "sequence": "match3",
            "video": {"width": 640, "height": 360, "frames": 60, "fps": 25.0},
        },
        name="match3.mp4",
    ).run
    folder = store.run_dir(run)
    shutil.copyfile(scene.video, folder / "input.mp4")
    store.update(run, lambda r: r.inputs.update(frames=str(folder / "input.mp4")))
    write_det_db(folder / "det_db.json", mot_to_det_db(scene.gt, "match3", 60))
    store.start_stage(run, "detect", {"detector": "motion"})
    store.succeed_stage(run, "detect", ["det_db.json"], {"det_db": {"frames": 60}})
    write_mot(folder / "tracks.txt", scene.gt)
    store.start_stage(run, "track", {"tracker": "bytetrack"})
    store.succeed_stage(run, "track", ["tracks.txt"])
    write_mot(folder / "gt.txt", scene.gt.select(scene.gt.frame % 10 == 1))
    store.update(run, lambda r: store.record_artifacts(r, folder, ["gt.txt"]))
    return store, run, scene


def use(monkeypatch, url: str, token: str) -> None:
    monkeypatch.setenv("MOTPIPE_LABEL_STUDIO_URL", url)
    monkeypatch.setenv("MOTPIPE_LABEL_STUDIO_TOKEN", token)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def fresh_settings():
    yield
    get_settings.cache_clear()


def test_push_annotate_pull_round_trip(studio, run, monkeypatch, capsys):
    store, run_id, scene = run
    root = str(store.root)
    auth = {"Authorization": f"Token {studio.legacy_token}"}
    push = ["label", "push", "--run", run_id, "--data-root", root, "--frames", "4", "--pick", "uniform",
            "--min-gap", "10", "--project", "loop test"]  # fmt: skip
    use(monkeypatch, studio.url, studio.personal_token)  # a personal access token (JWT)
    assert main(push) == 0
    out = capsys.readouterr().out
    assert "4 tasks (4 added, 0 already there)" in out, out
    project = int(out.split()[1].rstrip(":"))
    tasks = httpx.get(f"{studio.url}/api/tasks", params={"project": project}, headers=auth).json()["tasks"]
    frames = sorted(t["data"]["frame"] for t in tasks)
    assert len(frames) == 4 and not any(f % 10 == 1 for f in frames)  # no frame that has ground truth
    first = min(tasks, key=lambda t: t["data"]["frame"])
    assert first["data"]["image"].endswith(f"match3_{first['data']['frame']:06d}.jpg")
    image = httpx.get(studio.url + first["data"]["image"], headers=auth)
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"  # the frame lives in Label Studio
    predictions = httpx.get(f"{studio.url}/api/predictions", params={"task": first["id"]}, headers=auth).json()
    regions = predictions[0]["result"]
    on_frame = scene.gt.select(scene.gt.frame == first["data"]["frame"])
    assert sorted(r["id"] for r in regions) == sorted(f"track_{i}" for i in on_frame.id.tolist())
    assert predictions[0]["model_version"] == f"match3.mp4 ({run_id})"

    use(monkeypatch, studio.url, studio.legacy_token)  # a legacy API key
    assert main(push) == 0 and "4 tasks (0 added, 4 already there)" in capsys.readouterr().out
    before = (store.run_dir(run_id) / "gt.txt").read_bytes()
    pull = ["label", "pull", "--run", run_id, "--data-root", root, "--project", str(project)]
    assert main(pull) == 0 and "nothing changed" in capsys.readouterr().out
    assert (store.run_dir(run_id) / "gt.txt").read_bytes() == before

    # an annotator: corrects one box of the first task, draws the ball anew; submits the second task empty
    moved = [dict(r, value=dict(r["value"])) for r in regions]
    moved[0]["value"]["x"] += 1.0
    drawn = {**moved[0], "id": "Xy7new", "value": {**moved[0]["value"], "x": 5.0, "y": 5.0, "width": 1.0,
                                                  "height": 1.5, "rectanglelabels": ["ball"]}}  # fmt: skip
    second = sorted(tasks, key=lambda t: t["data"]["frame"])[1]
    for task, result in ((first, [*moved, drawn]), (second, [])):
        answer = httpx.post(f"{studio.url}/api/tasks/{task['id']}/annotations", headers=auth,
                            json={"result": result, "lead_time": 12.5})  # fmt: skip
        assert answer.status_code == 201, answer.text
    assert main(pull) == 0
    said = capsys.readouterr().out
    balls = sum(r["value"]["rectanglelabels"] == ["ball"] for r in regions) + 1
    assert f"2 frames added, 0 replaced ({balls} ball, {len(regions) + 1 - balls} player)" in said, said
    gt = read_mot(store.run_dir(run_id) / "gt.txt")
    mine = gt.select(gt.frame == first["data"]["frame"])
    assert sorted(mine.id.tolist()) == sorted([*on_frame.id.tolist(), int(scene.gt.id.max()) + 1])
    moved_id = int(moved[0]["id"][6:])
    np.testing.assert_allclose(mine.boxes[mine.id == moved_id][0][0], on_frame.boxes[on_frame.id == moved_id][0][0]
                               + 6.4, atol=0.011)  # 1 % of 640 px  # fmt: skip
    assert not (gt.frame == second["data"]["frame"]).any()  # annotated as empty
    annotated = store.get(run_id).inputs["annotated_frames"]
    assert first["data"]["frame"] in annotated and second["data"]["frame"] in annotated and len(annotated) == 8
    report = evaluate_run(store, run_id, annotated_only=True)
    assert report.frames == "annotated (listed): 8 frames"
    assert main(pull) == 0 and "nothing changed" in capsys.readouterr().out  # idempotent


def test_label_studio_failures_are_one_line_and_change_nothing(studio, run, monkeypatch, capsys):
    store, run_id, _ = run
    record = (store.run_dir(run_id) / "run.json").read_bytes()
    push = ["label", "push", "--run", run_id, "--data-root", str(store.root), "--frames", "2", "--pick", "uniform"]
    other = httpx.post(f"{studio.url}/api/projects", headers={"Authorization": f"Token {studio.legacy_token}"},
                       json={"title": "cats", "label_config": '<View><Image name="i" value="$image"/><Choices '
                             'name="c" toName="i"><Choice value="cat"/></Choices></View>'}).json()  # fmt: skip
    cases = [
        (studio.url, "0" * 40, [], "refused the token"),
        (studio.url, "not.a.jwt", [], "refused the personal access token"),
        ("http://127.0.0.1:9", studio.legacy_token, [], "did not answer"),
        (studio.url, studio.legacy_token, ["--project", str(other["id"])], "has another labeling config"),
        (studio.url, studio.legacy_token, ["--project", "999999"], "has no project 999999"),
    ]
    for url, token, extra, needle in cases:
        use(monkeypatch, url, token)
        assert main([*push, *extra]) == 2, needle
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1, err
    assert (store.run_dir(run_id) / "run.json").read_bytes() == record


@pytest.mark.service
def test_push_and_pull_over_http_through_a_worker(studio, run, stack):
    """`POST /runs/{run}/label` and `/label/pull`: 202, a worker does it as the run's `label` stage, whose
    params say what was done and why each frame was picked."""
    store, run_id, _ = run  # the stack's data root
    stack.env |= {"MOTPIPE_LABEL_STUDIO_URL": studio.url, "MOTPIPE_LABEL_STUDIO_TOKEN": studio.personal_token}
    stack.start_gateway()
    stack.start_worker("w1")
    body = {"frames": 3, "pick": "uniform", "min_gap": 10, "project": "over http"}
    answer = httpx.post(f"{stack.url}/runs/{run_id}/label", json=body, timeout=30)
    assert answer.status_code == 202, answer.text
    label = stack.wait_stage(run_id, "label", timeout=120)["stages"]["label"]
    assert label["state"] == "succeeded", label
    outcome = label["params"]["outcome"]
    assert outcome["added"] == 3 and len(outcome["picks"]) == 3
    assert all(p["reason"].startswith("evenly spaced") for p in outcome["picks"])
    answer = httpx.post(f"{stack.url}/runs/{run_id}/label/pull", json={"project": str(outcome["project"])})
    assert answer.status_code == 202, answer.text
    label = stack.wait_stage(run_id, "label", timeout=120)["stages"]["label"]
    assert label["state"] == "succeeded" and label["params"]["outcome"]["changed"] is False, label
    for path, bad in ((f"/runs/{run_id}/label", {"frames": 0}), (f"/runs/{run_id}/label/pull", {}),
                      ("/runs/0123456789abcdef/label", body)):  # fmt: skip
        assert httpx.post(f"{stack.url}{path}", json=bad).status_code in (404, 422)

    # the run page: the last pull's outcome; "Send frames" with the picks and their reasons
    from tests.test_ui_browser import _driver, console_errors, wait_for

    driver = _driver()
    try:
        driver.get(f"{stack.url}/ui/runs/{run_id}")
        wait_for(driver, "document.querySelector('#label .status').textContent.includes('nothing changed')", 30, "pull")
        form = driver.find_element("id", "label")
        assert form.find_element("name", "project").get_attribute("value") == str(outcome["project"])
        frames = form.find_element("name", "frames")
        frames.clear()
        frames.send_keys("5")
        form.find_element("css selector", "select[name=pick] option[value=uniform]").click()
        form.find_element("css selector", "button[type=submit]").click()
        wait_for(driver, "document.querySelectorAll('#label-picks li').length > 0", 120, "the picks")
        status = driver.find_element("css selector", "#label .status").text
        assert status.startswith(f"project {outcome['project']}:") and "already there" in status, status
        assert "evenly spaced" in driver.find_element("id", "label-picks").text
        driver.save_screenshot(str(stack.root.parent / "label_card.png"))  # for a person to look at
        assert console_errors(driver) == []
    finally:
        driver.quit()


def test_over_http_a_dead_label_studio_is_a_502_and_no_setting_a_409(run, tmp_path):
    from fastapi.testclient import TestClient

    from services.gateway.app import create
    from shared.settings import Settings

    store, run_id, _ = run
    before = (store.run_dir(run_id) / "run.json").read_bytes()
    for url, status, needle in (("http://127.0.0.1:9", 502, "did not answer"), (None, 409, "LABEL_STUDIO_URL")):
        client = TestClient(create(Settings(data_root=store.root, label_studio_url=url, label_studio_token="t")))
        answer = client.post(f"/runs/{run_id}/label", json={"frames": 2, "pick": "uniform"})
        assert answer.status_code == status and needle in answer.json()["detail"], answer.text
    assert (store.run_dir(run_id) / "run.json").read_bytes() == before
