"""Defects found by attacking the service (reliability issue): each answered 500 or left a state that lied."""

import asyncio
import json
import shutil
import time

import numpy as np
import pytest

from shared.api.files import open_file_response
from shared.atomic import atomic_write_bytes
from tests.test_api import api, snapshot, stored_run  # noqa: F401 - fixtures


@pytest.fixture
def video_in_root(api, scene):  # noqa: F811
    _, _, settings = api
    settings.data_root.mkdir(parents=True, exist_ok=True)
    shutil.copy(scene.video, settings.data_root / "clip.mp4")
    return "clip.mp4"


@pytest.mark.parametrize(
    "roi",
    [5, [1, 2], [1, 2, 3], "x,y", [[0, 0], [1, 1], [2]], [0, 0, float("nan"), 5], "[[0, 0], [10, 0], [NaN, 5]]"],
)
def test_bad_roi_is_a_422_naming_it(api, video_in_root, roi):  # noqa: F811
    client, store, _ = api
    body = json.dumps({"path": video_in_root, "roi": roi}, allow_nan=True)
    answer = client.post("/detect", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422 and "roi" in answer.json()["detail"], answer.text
    assert store.list() == []


@pytest.mark.parametrize("path", ["a\x00b", "x" * 5000])
def test_odd_paths_are_refused(api, path):  # noqa: F811
    client, store, _ = api
    answer = client.post("/detect", json={"path": path})
    assert answer.status_code == 422 and "path" in answer.json()["detail"]
    assert store.list() == []


def test_media_types_are_case_insensitive_and_min_area_must_be_finite(api, video_in_root):  # noqa: F811
    client, _, _ = api
    headers = {"Content-Type": "Application/JSON"}
    for bad in ("Infinity", "NaN"):
        body = f'{{"path": "{video_in_root}", "min_area": {bad}}}'
        answer = client.post("/detect", content=body, headers=headers)
        assert answer.status_code == 422 and "min_area" in answer.json()["detail"], answer.text
    answer = client.post("/detect", content=json.dumps({"path": video_in_root}), headers=headers)
    assert answer.status_code == 202, answer.text


BOX = {"id": "a", "type": "rectanglelabels", "original_width": 640, "original_height": 360,
       "value": {"x": 1, "y": 1, "width": 5, "height": 9, "rectanglelabels": ["player"]}}  # fmt: skip
LS_TASK = {"data": {"image": "f_000001.jpg"}, "annotations": [{"result": [BOX]}]}


@pytest.mark.parametrize(
    "content,needle",
    [
        (json.dumps([{**LS_TASK, "annotations": [{"result": [{**BOX, "original_width": "x"}]}]}]), "original_width"),
        ("{}", "empty"),
        ("[]", "empty"),
        (json.dumps([{"data": {"image": "f_000001.jpg"}, "annotations": [{"result": []}]}]), "empty"),
    ],
)
def test_bad_or_empty_label_studio_ground_truth_replaces_nothing(api, stored_run, scene, content, needle):  # noqa: F811
    client, store, _ = api
    upload = {"file": ("gt.txt", scene.gt_txt.read_bytes())}
    assert client.post(f"/runs/{stored_run}/gt", files=upload).status_code == 201
    before = snapshot(store)
    answer = client.post(f"/runs/{stored_run}/gt", files={"file": ("gt.json", content.encode())})
    assert answer.status_code == 400 and needle in answer.json()["detail"], answer.text
    assert snapshot(store) == before
    ok = client.post(f"/runs/{stored_run}/gt", files={"file": ("gt.json", json.dumps([LS_TASK]).encode())})
    assert ok.status_code == 201, ok.text


def tracked_with_ground_truth(client, store, run: str, scene):
    """The run as if tracking finished with perfect tracks, and its ground truth uploaded."""
    folder = store.run_dir(run)
    (folder / "tracks.txt").write_bytes(scene.gt_txt.read_bytes())
    store.start_stage(run, "track")
    store.succeed_stage(run, "track", ["tracks.txt"])
    assert client.post(f"/runs/{run}/gt", files={"file": ("gt.txt", scene.gt_txt.read_bytes())}).status_code == 201
    return folder


def test_deleted_outputs_become_410_and_a_state_that_says_so(api, stored_run, scene):  # noqa: F811
    client, store, _ = api
    folder = tracked_with_ground_truth(client, store, stored_run, scene)
    (folder / "det_db.json").unlink()
    answer = client.get(f"/runs/{stored_run}/artifacts/det_db.json")
    assert answer.status_code == 410 and "det_db.json" in answer.json()["detail"]
    detect = client.get(f"/runs/{stored_run}").json()["stages"]["detect"]
    assert detect["state"] == "failed" and "missing" in detect["error"]
    (folder / "tracks.txt").unlink()
    answer = client.get(f"/eval/{stored_run}")
    assert answer.status_code == 410
    record = client.get(f"/runs/{stored_run}").json()
    assert record["stages"]["track"]["state"] == "failed" and "tracks.txt" not in record["artifacts"]


def test_one_unreadable_run_record_does_not_hide_the_others(api, stored_run, capsys):  # noqa: F811
    from services.gateway.cli import main

    client, store, _ = api
    broken = store.create()
    (store.run_dir(broken.run) / "run.json").write_text("{not json")
    assert main(["runs", "--data-root", str(store.root), "reindex"]) == 0  # reported and skipped
    out = capsys.readouterr().out
    assert f"skipped {store.run_dir(broken.run) / 'run.json'}: " in out and "1 skipped" in out
    answer = client.get("/runs")
    assert answer.status_code == 200 and [r["run"] for r in answer.json()["runs"]] == [stored_run]
    assert client.get(f"/runs/{broken.run}").status_code < 500


def test_a_file_replaced_while_it_is_served_comes_out_whole(tmp_path):
    path = tmp_path / "tracks.txt"
    old, new = b"1,1,0,0,5,5\n" * 300_000, b"2,2,0,0,5,5\n" * 10
    path.write_bytes(old)
    response = open_file_response(path)
    atomic_write_bytes(path, new)  # the re-track's atomic rename lands after the request opened the file

    async def body() -> bytes:
        return b"".join([chunk async for chunk in response.body_iterator])

    assert asyncio.run(body()) == old and response.headers["content-length"] == str(len(old))
    path.unlink()
    with pytest.raises(FileNotFoundError):
        open_file_response(path)


def test_a_re_track_keeps_the_old_metrics_and_serves_none_for_the_new_tracks_yet(api, stored_run, scene):  # noqa: F811
    """A re-track is a child run (issue 24): the parent's metrics stay its own; the child has none to serve
    until its tracks exist."""
    client, store, _ = api
    folder = tracked_with_ground_truth(client, store, stored_run, scene)
    assert client.get(f"/eval/{stored_run}").status_code == 200 and (folder / "metrics.json").is_file()
    before = (folder / "metrics.json").read_bytes()
    answer = client.post("/track", json={"run": stored_run, "tracker": "bytetrack"})
    assert answer.status_code == 202 and answer.json()["run"] != stored_run
    assert (folder / "metrics.json").read_bytes() == before
    # the re-track has not finished (here: no worker), so there is nothing current to serve for it
    assert client.get(f"/eval/{answer.json()['run']}").status_code == 409


def test_the_413_message_names_the_limit_that_applies(api, stored_run):  # noqa: F811
    client, _, settings = api
    big = b"\0" * (settings.upload_limit_bytes + 1)
    answer = client.post("/detect", files={"file": ("big.mp4", big, "video/mp4")})
    assert answer.status_code == 413 and "2 MB (MOTPIPE_UPLOAD_LIMIT_MB)" in answer.json()["detail"]


def test_a_deeply_nested_json_body_is_a_400_and_the_server_stays_up(api):  # noqa: F811
    client, _, _ = api
    body = "[" * 100_000 + "]" * 100_000
    answer = client.post("/track", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code in (400, 413, 422), answer.text
    assert client.get("/healthz").status_code == 200


def test_absurd_frame_numbers_are_refused_with_the_line():
    from shared.errors import InputError
    from shared.formats.mot_txt import parse_mot_bytes

    with pytest.raises(InputError, match=r"line 2.*frame number above 10,000,000"):
        parse_mot_bytes(b"1,1,0,0,5,5\n200000000,1,0,0,5,5\n", "gt.txt")


def test_a_glob_through_a_symlinked_folder_cannot_leave_the_data_root(api, scene, tmp_path):  # noqa: F811
    import cv2

    client, store, settings = api
    outside = tmp_path / "outside"
    outside.mkdir()
    cv2.imwrite(str(outside / "000001.png"), np.zeros((32, 32, 3), np.uint8))
    settings.data_root.mkdir(parents=True, exist_ok=True)
    (settings.data_root / "frames").symlink_to(outside)
    answer = client.post("/detect", json={"path": "frames/*.png"})
    assert answer.status_code == 400 and "outside the data root" in answer.json()["detail"]
    assert store.list() == []


def test_two_file_fields_and_killed_uploads_leave_no_temporary_files(api, scene):  # noqa: F811
    import os
    import time

    client, store, settings = api
    video = scene.video.read_bytes()
    files = [("file", ("a.mp4", video, "video/mp4")), ("file", ("b.mp4", video, "video/mp4"))]
    answer = client.post("/detect", files=files, data={"sequence": "s"})
    assert answer.status_code == 202, answer.text
    uploads = settings.data_root / "uploads"
    assert not list(uploads.glob("*.part"))
    stale = uploads / "left-by-a-killed-api.part"
    stale.write_bytes(b"x")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    from services.gateway.app import create

    create(settings)  # an API starting up cleans what a killed one left
    assert not stale.exists()


def test_an_empty_token_is_said_loudly_and_errors_name_paths_relative_to_the_data_root(tmp_path):
    from fastapi.testclient import TestClient

    from services.gateway.app import create
    from shared.settings import Settings

    client = TestClient(create(Settings(data_root=tmp_path / "data", api_token="")))
    health = client.get("/healthz").json()
    assert health["auth"].startswith("OFF") and "empty" in health["auth"]
    assert TestClient(create(Settings(data_root=tmp_path / "d2", api_token="t"))).get("/healthz").json()["auth"] == "on"
    (tmp_path / "data" / "notes.mp4").write_bytes(b"not a video at all" * 10)
    answer = client.post("/detect", json={"path": "notes.mp4"})
    assert answer.status_code == 400 and "notes.mp4" in answer.json()["detail"]
    assert str(tmp_path) not in answer.json()["detail"]


def test_a_video_without_frame_count_detects_like_its_mp4(scene, tmp_path):
    """MKV stores no frame count: it is counted from packets, so sampling, progress and the det_db match."""
    import av

    from services.detector.engine import run_detection
    from services.detector.registry import build_detector
    from shared.frames import open_frames
    from shared.schemas import DetectOptions

    mkv = tmp_path / "clip.mkv"
    with av.open(str(scene.video)) as src, av.open(str(mkv), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    with av.open(str(mkv)) as container:
        assert container.streams.video[0].frames == 0  # the container says nothing
    options = DetectOptions(detector="motion", sequence="s")
    progress = []
    results = [run_detection(open_frames(path), build_detector(options, "cpu"), options,
                             lambda done, total: progress.append(total)) for path in (scene.video, mkv)]  # fmt: skip
    assert open_frames(mkv).count == scene.frames and set(progress) == {scene.frames}
    assert results[0].det_db().keys() == results[1].det_db().keys()
    for key, rows in results[0].det_db().items():
        np.testing.assert_array_equal(rows, results[1].det_db()[key])


def test_a_one_frame_video_says_why_its_result_is_empty(tmp_path):
    from services.detector.engine import run_detection
    from services.detector.registry import build_detector
    from shared.frames import open_frames
    from shared.schemas import DetectOptions
    from shared.synth import render_scene

    one = render_scene(tmp_path / "one", frames=1, seed=2, size=(320, 180))
    options = DetectOptions(detector="motion", sequence="s")
    result = run_detection(open_frames(one.video), build_detector(options, "cpu"), options)
    assert result.info.detections == 0 and "saw 1 frame" in result.info.notes[0]
    strict = DetectOptions(detector="motion", sequence="s", score_threshold=1.0)
    scene = render_scene(tmp_path / "many", frames=20, seed=2, size=(320, 180))
    filtered = run_detection(open_frames(scene.video), build_detector(strict, "cpu"), strict)
    assert filtered.info.detections == 0 and "removed by the filters" in filtered.info.notes[0]


def test_a_data_root_that_cannot_be_written_fails_the_request_up_front(tmp_path, scene):
    from fastapi.testclient import TestClient

    from services.gateway.app import create
    from shared.settings import Settings

    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(scene.video, root / "clip.mp4")
    (root / "runs").write_text("a file where the runs folder should be")  # any write under runs/ fails
    client = TestClient(create(Settings(data_root=root)))
    answer = client.post("/detect", json={"path": "clip.mp4"})
    assert answer.status_code == 507 and "cannot be written" in answer.json()["detail"]
    assert str(tmp_path) not in answer.json()["detail"]


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs as the data root: a disk that really fills (skips where mounting is not allowed)."""
    import subprocess

    root = tmp_path / "disk"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(root)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def _fill(root) -> None:
    with open(root / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(4 << 10))
        except OSError:
            pass


def test_a_disk_that_fills_during_a_task_still_ends_the_stage_failed(small_disk):
    """The worker side of item 10: the task's own write hits ENOSPC, and so does run.json; the reserve the
    workers hold on the data root is released so the failure is recorded, with its reason."""
    from shared.run_store import RESERVE, RunStore
    from shared.tasks import run_stage

    store = RunStore(small_disk)
    store.keep_reserve()
    assert (small_disk / RESERVE).is_file()
    run = store.create().run
    store.start_stage(run, "detect")
    _fill(small_disk)

    def body() -> list[str]:
        atomic_write_bytes(store.run_dir(run) / "det_db.json", bytes(1 << 20))  # the disk is full
        return ["det_db.json"]

    result = run_stage(store, run, "detect", body, heartbeat_s=60)
    assert result["state"] == "failed"
    stage = store.get(run).stages["detect"]
    assert stage.state == "failed" and "No space left" in stage.error and "disk was full" in stage.error
    (small_disk / "filler").unlink()
    store.keep_reserve()  # the room comes back once there is space
    assert (small_disk / RESERVE).is_file()


def test_a_read_only_data_root_mid_task_reads_as_failed(small_disk, monkeypatch):
    """Nothing can be written at all: the task still reports failed, and readers show the stage failed once
    its heartbeat is older than the limit, instead of `running` forever."""
    import subprocess

    from fastapi.testclient import TestClient

    from services.gateway.app import create
    from shared.run_index import close_indexes
    from shared.run_store import RunStore
    from shared.settings import Settings
    from shared.tasks import run_stage

    store = RunStore(small_disk)
    run = store.create().run
    store.start_stage(run, "detect")
    client = TestClient(create(Settings(data_root=small_disk, stage_stale_s=0.05)))  # the API was up before
    close_indexes()  # a file open for writing (the index) would keep the remount from happening
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)

    def body() -> list[str]:
        raise OSError(30, "Read-only file system")

    assert run_stage(store, run, "detect", body, heartbeat_s=60)["state"] == "failed"
    assert store.get(run).stages["detect"].state == "running"  # the file could not change
    time.sleep(0.3)
    stage = client.get(f"/runs/{run}").json()["stages"]["detect"]
    assert stage["state"] == "failed" and "cannot write the run record" in stage["error"]
    listed = client.get("/runs").json()["runs"][0]  # the index cannot be opened: read from the folders
    assert listed["stages"]["detect"] == "failed" and listed["state"] == "failed"


def test_a_ground_truth_file_is_parsed_in_place_not_copied_into_memory(tmp_path):
    """Item 17: the upload is streamed to disk and parsed from a memory map of it, so the process holds the
    table, not also a copy of the file (traced peak at least 80% of the file size below the copying path)."""
    import tracemalloc

    from services.evaluator.ground_truth import parse_ground_truth, read_ground_truth

    n = 250_000
    frames = np.repeat(np.arange(1, n // 10 + 1), 10)
    rows = np.column_stack([frames, np.tile(np.arange(1, 11), n // 10), np.full((n, 4), 123.25), np.ones((n, 3))])
    path = tmp_path / "gt.txt"
    np.savetxt(path, rows, fmt="%g", delimiter=",")
    size = path.stat().st_size

    def peak(read) -> tuple[int, object]:
        tracemalloc.start()
        try:
            table = read()[1]
            return tracemalloc.get_traced_memory()[1], table
        finally:
            tracemalloc.stop()

    mapped_peak, table = peak(lambda: read_ground_truth(path))
    copied_peak, same = peak(lambda: parse_ground_truth(path.read_bytes(), str(path)))
    assert len(table) == n and np.array_equal(table.boxes, same.boxes)
    assert mapped_peak < copied_peak - 0.8 * size, (mapped_peak, copied_peak, size)
