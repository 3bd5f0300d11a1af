"""HTTP contract and bad input, in process (file broker under a temporary data root, no worker)."""

import json
import shutil

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create
from shared.run_store import RunStore
from shared.settings import Settings

TOKEN = "s3cret"


@pytest.fixture
def api(tmp_path):
    settings = Settings(data_root=tmp_path / "data", api_token=TOKEN, upload_limit_mb=2)
    client = TestClient(create(settings))
    client.headers["Authorization"] = f"Bearer {TOKEN}"
    return client, RunStore(settings.data_root), settings


@pytest.fixture
def stored_run(api, scene):
    """A run with a finished detect stage, to prove bad requests leave it untouched."""
    client, store, _ = api
    with open(scene.video, "rb") as handle:
        answer = client.post("/detect", files={"file": ("clip.mp4", handle, "video/mp4")}, data={"sequence": "s"})
    assert answer.status_code == 202, answer.text
    run = answer.json()["run"]
    (store.run_dir(run) / "det_db.json").write_text('{"s/img1/000001": []}')
    store.succeed_stage(run, "detect", ["det_db.json"])
    return run


def snapshot(store: RunStore) -> dict:
    return {p.relative_to(store.root).as_posix(): p.read_bytes() for p in store.runs_dir.rglob("*") if p.is_file()}


def test_upload_creates_run_and_queues_detect(api, stored_run):
    client, store, _ = api
    body = client.get(f"/runs/{stored_run}").json()
    assert body["run"] == stored_run
    assert body["stages"]["detect"]["state"] == "succeeded"
    assert body["stages"]["track"]["state"] == "pending"
    assert body["artifacts"]["det_db.json"]["bytes"] > 0
    assert (store.run_dir(stored_run) / "input.mp4").stat().st_size > 0
    assert [r["run"] for r in client.get("/runs").json()["runs"]] == [stored_run]
    assert client.get(f"/runs/{stored_run}/artifacts/det_db.json").json() == {"s/img1/000001": []}


def _bad_videos(scene, tmp_path):
    data = scene.video.read_bytes()
    return {
        "empty.mp4": (b"", "empty (0-byte)"),
        "truncated.mp4": (data[: len(data) // 2], "truncated"),
        "notes.mp4": (b"these are my notes, not a video\n" * 20, "not a readable video"),
    }


@pytest.mark.parametrize("name", ["empty.mp4", "truncated.mp4", "notes.mp4"])
def test_bad_videos_are_refused_and_leave_runs_untouched(api, stored_run, scene, tmp_path, name):
    client, store, settings = api
    before = snapshot(store)
    content, needle = _bad_videos(scene, tmp_path)[name]
    answer = client.post("/detect", files={"file": (name, content, "video/mp4")})
    assert answer.status_code == 400
    assert name in answer.json()["detail"] and needle in answer.json()["detail"]
    assert snapshot(store) == before
    assert not any((settings.data_root / "uploads").iterdir())


def test_upload_over_the_limit_is_refused(api, stored_run):
    client, store, settings = api
    before = snapshot(store)
    big = b"\0" * (settings.upload_limit_bytes + 1)
    answer = client.post("/detect", files={"file": ("big.mp4", big, "video/mp4")})
    assert answer.status_code == 413
    assert snapshot(store) == before
    assert not any((settings.data_root / "uploads").iterdir())


def test_wrong_or_missing_token(api):
    client, _, _ = api
    assert client.get("/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/runs", headers={"Authorization": ""}).status_code == 401
    assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200  # liveness stays open


@pytest.mark.parametrize("run,status", [("0123456789abcdef", 404), ("..%2F..%2Fetc", 404), ("nothex", 422)])
def test_unknown_run_ids(api, run, status):
    """An unknown run is a 404; a malformed id a 422 (the OpenAPI document declares the id's pattern)."""
    client, _, _ = api
    assert client.get(f"/runs/{run}").status_code == status
    assert client.post("/track", json={"run": "0123456789abcdef"}).status_code == 404


def test_paths_outside_the_data_root_are_refused(api, scene):
    client, store, settings = api
    for path in ("../../etc/passwd", "/etc/passwd", "videos/../../x.mp4"):
        answer = client.post("/detect", json={"path": path})
        assert answer.status_code == 400 and "outside the data root" in answer.json()["detail"]
    (settings.data_root / "videos").mkdir(parents=True)
    shutil.copy(scene.video, settings.data_root / "videos" / "clip.mp4")
    assert client.post("/detect", json={"path": "videos/clip.mp4", "sequence": "clip"}).status_code == 202


def test_bad_options_name_the_field(api, scene):
    client, store, _ = api
    with open(scene.video, "rb") as handle:
        answer = client.post("/detect", files={"file": ("c.mp4", handle)}, data={"score_threshold": "2"})
    assert answer.status_code == 422 and "score_threshold" in answer.json()["detail"]
    answer = client.post("/detect", json={"path": "x.mp4", "sequence": "../up"})
    assert answer.status_code == 422 and "sequence" in answer.json()["detail"]
    with open(scene.video, "rb") as handle:
        answer = client.post("/detect", files={"file": ("c.mp4", handle)}, data={"detector": "yolo"})
    assert answer.status_code == 400 and "unknown detector 'yolo'" in answer.json()["detail"]
    with open(scene.video, "rb") as handle:
        answer = client.post("/detect", files={"file": ("c.mp4", handle)}, data={"classes": "referee"})
    assert answer.status_code == 400 and "unknown class 'referee'" in answer.json()["detail"]
    assert store.list() == []


def test_track_needs_finished_detect(api, scene):
    client, store, _ = api
    run = store.create().run
    answer = client.post("/track", json={"run": run, "tracker": "bytetrack"})
    assert answer.status_code == 409 and "detect stage is pending" in answer.json()["detail"]


def test_track_refuses_unknown_tracker_and_options(api, stored_run):
    client, _, _ = api
    answer = client.post("/track", json={"run": stored_run, "tracker": "sort"})  # the schema's enum
    assert answer.status_code == 422 and "bytetrack" in answer.json()["detail"], answer.text
    answer = client.post("/track", json={"run": stored_run, "options": {"bogus": 1}})
    assert answer.status_code == 422 and "options.bogus" in answer.json()["detail"]  # the contract: 422
    for bad in (-5, "x", "NaN"):  # values out of range are refused at the request, never in a worker
        answer = client.post("/track", json={"run": stored_run, "options": {"lost_track_buffer": bad}})
        assert answer.status_code == 422 and "options.lost_track_buffer" in answer.json()["detail"], bad
    answer = client.post("/track", json={"run": stored_run, "tracker": "motrv2", "options": {"miss_tolerance": -1}})
    assert answer.status_code == 422 and "options.miss_tolerance" in answer.json()["detail"]
    answer = client.post("/track", json={"run": stored_run})
    assert answer.status_code == 202


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("gt.txt", b"1,1,0,0,10,10\n1,2,0,0,nan,10\n", "line 2, field 'w'"),
        ("gt.txt", b"1,1,0,0,10,-10\n", "negative box size"),
        ("gt.txt", b"", "empty"),
        (
            "gt.json",
            b'[{"data": {"image": "f_000001.jpg"}, "annotations": [{"result": [{"id": "a", '
            b'"type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 1, "height": 1, '
            b'"rectanglelabels": ["player"]}}]}]}]',
            "original_width",
        ),
        ("gt.json", b"[{", "invalid JSON"),
    ],
)
def test_malformed_ground_truth_is_refused(api, stored_run, name, content, needle):
    client, store, _ = api
    before = snapshot(store)
    answer = client.post(f"/runs/{stored_run}/gt", files={"file": (name, content)})
    assert answer.status_code == 400, answer.text
    assert name in answer.json()["detail"] and needle in answer.json()["detail"]
    assert snapshot(store) == before


def test_ground_truth_upload_either_format(api, stored_run, scene):
    client, store, _ = api
    answer = client.post(f"/runs/{stored_run}/gt", files={"file": ("gt.txt", scene.gt_txt.read_bytes())})
    assert answer.status_code == 201 and answer.json()["format"] == "mot"
    assert answer.json()["rows"] == len(scene.gt)
    answer = client.post(f"/runs/{stored_run}/gt", files={"file": ("ls.json", scene.gt_labelstudio.read_bytes())})
    assert answer.status_code == 201 and answer.json()["format"] == "labelstudio"
    artifacts = client.get(f"/runs/{stored_run}").json()["artifacts"]
    assert "gt.json" in artifacts and "gt.txt" not in artifacts
    assert json.loads((store.run_dir(stored_run) / "gt.json").read_bytes())


def test_health_and_prometheus(api):
    client, _, _ = api
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["checks"] == {"data_root": "ok", "broker": "ok"}
    client.get("/runs")
    text = client.get("/metrics").text
    assert 'motpipe_http_requests_total{method="GET",route="/runs",status="200"}' in text


def test_eval_endpoint_409_422_then_metrics_cached_and_plots(api, stored_run, scene):
    client, store, _ = api
    answer = client.get(f"/eval/{stored_run}")
    assert answer.status_code == 409 and "track stage is pending" in answer.json()["detail"]
    folder = store.run_dir(stored_run)
    (folder / "tracks.txt").write_bytes(scene.gt_txt.read_bytes())  # perfect tracks
    store.start_stage(stored_run, "track")
    store.succeed_stage(stored_run, "track", ["tracks.txt"])
    answer = client.get(f"/eval/{stored_run}")
    assert answer.status_code == 422 and "no ground truth" in answer.json()["detail"]
    assert (
        client.post(f"/runs/{stored_run}/gt", files={"file": ("gt.txt", scene.gt_txt.read_bytes())}).status_code == 201
    )
    answer = client.get(f"/eval/{stored_run}")
    assert answer.status_code == 200
    assert answer.json()["trackeval"]["MOTA"] == 1.0 and answer.json()["iou_threshold"] == 0.5
    cached = (folder / "metrics.json").stat().st_mtime_ns
    assert client.get(f"/eval/{stored_run}").json() == answer.json()
    assert (folder / "metrics.json").stat().st_mtime_ns == cached
    assert client.get(f"/eval/{stored_run}?iou=0.7").json()["iou_threshold"] == 0.7
    plot = client.get(f"/eval/{stored_run}/plots/dashboard.png")
    assert plot.status_code == 200 and plot.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/eval/{stored_run}/plots/nope.png").status_code == 404
    assert client.get(f"/eval/{stored_run}?iou=2").status_code == 422
    compare = client.post("/eval/compare", json={"runs": [stored_run, stored_run], "labels": ["a", "b"]})
    assert compare.status_code == 200 and [r["MOTA"] for r in compare.json()["runs"]] == [1.0, 1.0]
    # new ground truth makes the cached metrics stale: they are dropped and recomputed
    fewer = b"".join(scene.gt_txt.read_bytes().splitlines(keepends=True)[::2])
    assert client.post(f"/runs/{stored_run}/gt", files={"file": ("gt.txt", fewer)}).status_code == 201
    assert client.get(f"/eval/{stored_run}").json()["trackeval"]["MOTA"] < 1.0


def test_doctor_endpoint_reports_on_the_runs_files(api, stored_run):
    client, _, _ = api
    answer = client.get(f"/runs/{stored_run}/doctor")
    assert answer.status_code == 200
    assert [f["code"] for f in answer.json()["findings"]] == ["DETDB_EMPTY"]
    assert client.get("/runs/0123456789abcdef/doctor").status_code == 404


def test_overlay_endpoint(api, stored_run, scene):
    client, store, _ = api
    assert client.get(f"/runs/{stored_run}/overlay.mp4").status_code == 200  # det_db layer (empty) on the video
    assert "overlay.mp4" in client.get(f"/runs/{stored_run}").json()["artifacts"]
    # new ground truth: the cached overlay is dropped and drawn again with the new layer
    assert (
        client.post(f"/runs/{stored_run}/gt", files={"file": ("gt.txt", scene.gt_txt.read_bytes())}).status_code == 201
    )
    assert "overlay.mp4" not in client.get(f"/runs/{stored_run}").json()["artifacts"]
    assert client.get(f"/runs/{stored_run}/overlay.mp4").status_code == 200
    empty_run = store.create().run
    assert client.get(f"/runs/{empty_run}/overlay.mp4").status_code == 409


def test_eval_per_class_annotated_only_and_exact_cache_keys(api, stored_run, scene):
    client, store, _ = api
    folder = store.run_dir(stored_run)
    (folder / "tracks.txt").write_bytes(scene.gt_txt.read_bytes())  # perfect tracks, class column kept
    store.start_stage(stored_run, "track")
    store.succeed_stage(stored_run, "track", ["tracks.txt"])
    lines = scene.gt_txt.read_bytes().splitlines(keepends=True)
    every_third = b"".join(line for line in lines if int(line.split(b",")[0]) % 3 == 1)  # sparse annotation
    assert client.post(f"/runs/{stored_run}/gt", files={"file": ("gt.txt", every_third)}).status_code == 201
    full = client.get(f"/eval/{stored_run}").json()
    assert set(full["per_class"]) == {"player", "ball"} and full["frames"] == "all"
    sparse = client.get(f"/eval/{stored_run}?annotated_only=true").json()
    assert sparse["frames"].startswith("annotated") and sparse["trackeval"]["CLR_FP"] < full["trackeval"]["CLR_FP"]
    assert sparse["per_class"]["player"]["trackeval"]["GT_IDs"] == full["per_class"]["player"]["trackeval"]["GT_IDs"]
    a = client.get(f"/eval/{stored_run}?iou=0.5000001").json()
    b = client.get(f"/eval/{stored_run}?iou=0.5000002").json()
    assert (a["iou_threshold"], b["iou_threshold"]) == (0.5000001, 0.5000002)
    assert (folder / "metrics_iou0.5000001.json").is_file() and (folder / "metrics_iou0.5000002.json").is_file()
