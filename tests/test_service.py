"""Real services: the gateway (uvicorn) and Celery worker processes on the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from shared.formats.det_db import read_det_db
from shared.formats.mot_txt import read_mot
from shared.synth import render_scene
from tests.conftest import recall
from tests.stack import REDIS_URL, VISIBILITY_TIMEOUT_S, Stack, upload
from tests.test_pipeline import PLAYER_RECALL_BAR

pytestmark = pytest.mark.service


def test_upload_detect_track_through_gateway_and_worker(stack, scene):
    stack.start_gateway()
    stack.start_worker("w1")
    run = upload(stack, scene.video, "beach")

    record = stack.wait_stage(run, "detect")
    assert record["stages"]["detect"]["state"] == "succeeded", record
    assert record["stages"]["detect"]["progress"] == {"done": scene.frames, "total": scene.frames}
    det_db = read_det_db(stack.root / "runs" / run / "det_db.json")
    assert sorted(det_db) == [f"beach/img1/{f:06d}" for f in range(1, scene.frames + 1)]
    per_frame = {int(k.rsplit("/", 1)[1]): v for k, v in det_db.items()}
    players = scene.gt.cls == 1
    assert recall(scene.gt.frame[players], scene.gt.boxes[players], per_frame) >= PLAYER_RECALL_BAR

    answer = httpx.post(f"{stack.url}/track", json={"run": run, "tracker": "bytetrack"}, timeout=10)
    assert answer.status_code == 202, answer.text
    record = stack.wait_stage(run, "track")
    assert record["stages"]["track"]["state"] == "succeeded", record
    tracks = read_mot(stack.root / "runs" / run / "tracks.txt")
    assert record["artifacts"]["tracks.txt"]["bytes"] == (stack.root / "runs" / run / "tracks.txt").stat().st_size
    per_frame_tracks = {int(f): tracks.boxes[tracks.frame == f] for f in np.unique(tracks.frame)}
    assert recall(scene.gt.frame[players], scene.gt.boxes[players], per_frame_tracks) >= 0.8
    assert len(set(tracks.id.tolist())) <= 12  # 5 objects; not one id per frame

    with open(scene.gt_labelstudio, "rb") as handle:
        answer = httpx.post(f"{stack.url}/runs/{run}/gt", files={"file": ("gt.json", handle)}, timeout=10)
    assert answer.status_code == 201, answer.text
    metrics = httpx.get(f"{stack.url}/eval/{run}", timeout=60)
    assert metrics.status_code == 200, metrics.text
    assert metrics.json()["trackeval"]["MOTA"] > 0.6 and metrics.json()["framewise"]["recall"] > 0.8
    assert "det_db.classes.json" in record["artifacts"] and set(tracks.cls.tolist()) == {1, 2}
    per_class = metrics.json()["per_class"]  # the ball keeps its class from the detector to the metrics
    assert set(per_class) == {"player", "ball"} and per_class["ball"]["trackeval"]["HOTA"] > 0
    plot = httpx.get(f"{stack.url}/eval/{run}/plots/metrics_overview.png", timeout=10)
    assert plot.status_code == 200 and plot.content[:8] == b"\x89PNG\r\n\x1a\n"

    # the evaluator.evaluate task on the cpu queue writes the same metrics through the worker
    from shared.celery_app import make_celery
    from shared.settings import Settings

    celery = make_celery(Settings(data_root=stack.root, broker_url=REDIS_URL, result_backend=REDIS_URL))
    result = celery.send_task("evaluator.evaluate", args=[run, 0.6]).get(timeout=60)
    assert result["state"] == "succeeded", result
    assert stack.run(run)["stages"]["eval"]["state"] == "succeeded"
    assert "metrics_iou0.6.json" in stack.run(run)["artifacts"]
    findings = celery.send_task("evaluator.doctor", args=[run]).get(timeout=60)["findings"]
    assert not [f for f in findings if f["severity"] == "error"], findings
    assert "doctor.json" in stack.run(run)["artifacts"]


def test_stage_fails_with_reason_when_the_input_breaks(stack, scene):
    stack.start_gateway()
    stack.start_worker("w1")
    run = upload(stack, scene.video, "beach")
    assert stack.wait_stage(run, "detect")["stages"]["detect"]["state"] == "succeeded"
    (stack.root / "runs" / run / "det_db.json").write_text('{"beach/img1/000001": ["1,2,3"]}')  # damaged on disk
    answer = httpx.post(f"{stack.url}/track", json={"run": run}, timeout=10)
    assert answer.status_code == 202
    record = stack.wait_stage(run, "track")
    assert record["stages"]["track"]["state"] == "failed"
    assert "det_db.json" in record["stages"]["track"]["error"] and "entry 0" in record["stages"]["track"]["error"]
    assert "tracks.txt" not in record["artifacts"]


def test_worker_killed_mid_detect_the_task_is_delivered_again(stack, tmp_path):
    long_scene = render_scene(tmp_path / "long", frames=400, seed=5, size=(640, 360))
    stack.start_gateway()
    first = stack.start_worker("w1")
    run = upload(stack, long_scene.video, "long")

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        detect = stack.run(run)["stages"]["detect"]
        if detect["state"] == "running" and detect["progress"]["done"] > 0:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"detect never started: {stack.run(run)}")
    Stack.kill(first)
    assert stack.run(run)["stages"]["detect"]["state"] == "running"
    assert not (stack.root / "runs" / run / "det_db.json").exists()

    # Redis hands an unacknowledged task out again once the visibility timeout has passed;
    # a worker restores such tasks when it starts polling.
    time.sleep(VISIBILITY_TIMEOUT_S + 1)
    stack.start_worker("w2")
    record = stack.wait_stage(run, "detect", timeout=120)
    detect = record["stages"]["detect"]
    assert detect["state"] == "succeeded", record
    assert detect["attempts"] >= 2
    det_db = read_det_db(stack.root / "runs" / run / "det_db.json")
    assert len(det_db) == long_scene.frames


def test_worker_killed_mid_detect_is_requeued_by_the_reaper_within_90s(stack, tmp_path):
    """No wait for Redis' visibility timeout (an hour here): the stage's heartbeat stops, a live worker's
    reaper queues the recorded task again, and the run ends with the det_db an undisturbed run writes."""
    long_scene = render_scene(tmp_path / "long", frames=400, seed=6, size=(640, 360))
    stack.env |= {"MOTPIPE_VISIBILITY_TIMEOUT_S": "3600", "MOTPIPE_HEARTBEAT_S": "1", "MOTPIPE_STAGE_STALE_S": "6"}
    stack.start_gateway()
    first = stack.start_worker("w1")
    run = upload(stack, long_scene.video, "long")
    deadline = time.monotonic() + 60
    while stack.run(run)["stages"]["detect"]["progress"]["done"] == 0:
        assert time.monotonic() < deadline, stack.run(run)
        time.sleep(0.1)
    Stack.kill(first)
    killed_at = time.monotonic()
    stack.start_worker("w2")
    record = stack.wait_stage(run, "detect", timeout=90)
    assert time.monotonic() - killed_at < 90
    detect = record["stages"]["detect"]
    assert detect["state"] == "succeeded" and detect["attempts"] == 2, record
    assert "requeued" in (stack.logs / "w2.log").read_text()
    undisturbed = upload(stack, long_scene.video, "long")
    assert stack.wait_stage(undisturbed, "detect", timeout=120)["stages"]["detect"]["state"] == "succeeded"
    runs = stack.root / "runs"
    assert (runs / run / "det_db.json").read_bytes() == (runs / undisturbed / "det_db.json").read_bytes()


def test_motpipe_serve_runs_without_a_broker_server(tmp_path, scene):
    """`motpipe serve`: API and one worker from one command, broker and results as files."""
    stack = Stack(tmp_path / "data")
    for name in ("MOTPIPE_BROKER_URL", "MOTPIPE_RESULT_BACKEND"):
        stack.env.pop(name)
    workdir = tmp_path / "workdir"  # where a user would type `motpipe serve`: nothing may appear there
    workdir.mkdir()
    stack._spawn("serve", ["-m", "services.gateway.cli", "serve", "--port", str(stack.port)], cwd=workdir)
    try:
        stack.wait_healthy()
        run = upload(stack, scene.video, "beach")
        record = stack.wait_stage(run, "detect")
        assert record["stages"]["detect"]["state"] == "succeeded", record
        assert httpx.post(f"{stack.url}/track", json={"run": run}, timeout=10).status_code == 202
        assert stack.wait_stage(run, "track")["stages"]["track"]["state"] == "succeeded"
        assert (stack.root / "broker" / "queue").is_dir() and (stack.root / "broker" / "control").is_dir()
    finally:
        stack.stop()
    assert list(workdir.iterdir()) == []


def _is_worker_of(proc: Path, root: Path) -> bool:
    """A live `motpipe worker` process whose environment names this test's data root."""
    try:
        return b"worker" in (proc / "cmdline").read_bytes() and str(root).encode() in (proc / "environ").read_bytes()
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_serve_restarts_a_killed_worker_and_finishes_the_run_in_flight(tmp_path):
    """Embedded mode: SIGKILL the worker behind `motpipe serve` mid-detect; within two minutes the run in
    flight is finished by the restarted worker (its reaper queues it again) and new runs work."""
    long_scene = render_scene(tmp_path / "long", frames=400, seed=7, size=(640, 360))
    stack = Stack(tmp_path / "data")
    for name in ("MOTPIPE_BROKER_URL", "MOTPIPE_RESULT_BACKEND"):
        stack.env.pop(name)
    stack.env |= {"MOTPIPE_HEARTBEAT_S": "1", "MOTPIPE_STAGE_STALE_S": "6"}
    serve = stack._spawn("serve", ["-m", "services.gateway.cli", "serve", "--port", str(stack.port)])
    try:
        stack.wait_healthy()
        run = upload(stack, long_scene.video, "long")
        deadline = time.monotonic() + 60
        while stack.run(run)["stages"]["detect"]["progress"]["done"] == 0:
            assert time.monotonic() < deadline, stack.run(run)
            time.sleep(0.1)
        workers = [pid for pid in _children(serve.pid) if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 1
        for pid in [*_children(workers[0]), workers[0]]:  # the worker and its pool process
            os.kill(pid, signal.SIGKILL)
        record = stack.wait_stage(run, "detect", timeout=120)
        assert record["stages"]["detect"]["state"] == "succeeded" and record["stages"]["detect"]["attempts"] == 2
        later = upload(stack, long_scene.video, "again")
        assert stack.wait_stage(later, "detect", timeout=120)["stages"]["detect"]["state"] == "succeeded"
        restarted = [pid for pid in _children(serve.pid) if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    finally:
        stack.stop()
    deadline = time.monotonic() + 30  # stopping serve stops its worker for good: none is started again
    while any(Path(f"/proc/{pid}").exists() for pid in restarted) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)  # a supervisor that restarted the worker on shutdown would have done it by now
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_worker_of(p, stack.root)]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_large_upload_streams_to_disk_with_flat_memory(stack):
    """A 512 MB upload: the gateway's peak memory grows by far less than the body's size."""
    size = 512 * 1024 * 1024
    stack.env["MOTPIPE_UPLOAD_LIMIT_MB"] = "1024"
    stack.start_gateway()
    gateway = stack.procs[0]
    before = _peak_rss_mb(gateway.pid)
    boundary = "motpipe-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    chunk = b"\x01" * (1024 * 1024)

    def body():
        yield head
        for _ in range(size // len(chunk)):
            yield chunk
        yield tail

    answer = httpx.post(
        f"{stack.url}/detect",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=300,
    )
    assert answer.status_code == 400 and "big.mp4" in answer.json()["detail"]  # streamed in full, then refused
    grown = _peak_rss_mb(gateway.pid) - before
    assert grown < 100, f"gateway peak memory grew by {grown:.0f} MB for a {size >> 20} MB upload"
    assert not any((stack.root / "uploads").iterdir())
    assert httpx.get(f"{stack.url}/runs", timeout=10).json()["total"] == 0


def test_track_with_motrv2_on_a_worker_equals_the_in_process_loop(stack, tmp_path, shared_dir, param_fill):
    """A filled checkpoint under the data root goes through POST /track and a real worker."""
    import json

    import torch

    from services.tracker.engine import build_tracker, run_tracking
    from services.tracker.motrv2.checkpoint import load_model
    from shared.frames import open_frames
    from shared.schemas import TrackOptions

    fill = param_fill
    manifest = json.loads((shared_dir / "reference" / "motrv2" / "manifest_official.json").read_text())
    state = {}
    for name, shape, _ in manifest:
        alias = (
            name.replace("bbox_embed.", "transformer.decoder.bbox_embed.", 1)
            if name.startswith("bbox_embed.")
            else name
        )
        state[name] = torch.from_numpy(fill.fill_value(alias, shape))
    weights = stack.root / "weights" / "motrv2.pth"
    weights.parent.mkdir(parents=True)
    torch.save({"model": state}, weights)
    scene = render_scene(tmp_path / "clip", frames=3, seed=8, size=(320, 180))
    # CPU MOTRv2 takes longer than the short visibility timeout the kill test uses: without this Redis would
    # hand the running task out a second time
    stack.env["MOTPIPE_VISIBILITY_TIMEOUT_S"] = "900"
    stack.start_gateway()
    stack.start_worker("w1")
    run = upload(stack, scene.video, "clip")
    assert stack.wait_stage(run, "detect")["stages"]["detect"]["state"] == "succeeded"
    body = {"run": run, "tracker": "motrv2", "weights": "weights/motrv2.pth", "score_threshold": 0.1,
            "options": {"update_score_threshold": 0.1, "area_threshold": 0}}  # fmt: skip
    answer = httpx.post(f"{stack.url}/track", json=body, timeout=10)
    assert answer.status_code == 202, answer.text
    record = stack.wait_stage(run, "track", timeout=300)
    assert record["stages"]["track"]["state"] == "succeeded", record
    served = read_mot(stack.root / "runs" / run / "tracks.txt")
    options = TrackOptions(tracker="motrv2", weights=str(weights), score_threshold=0.1, options=body["options"])
    direct = run_tracking(
        read_det_db(stack.root / "runs" / run / "det_db.json"),
        options,
        frames=open_frames(scene.video),
        tracker=build_tracker(options, "cpu", load_model(weights)),
    )
    direct = direct.select(np.lexsort((direct.id, direct.frame)))
    assert len(served) == len(direct) > 0
    assert served.id.tolist() == direct.id.tolist()
    np.testing.assert_allclose(served.boxes, direct.boxes, atol=0.01)
    bad = httpx.post(f"{stack.url}/track", json={**body, "weights": "weights/none.pth"}, timeout=10)
    assert bad.status_code == 400 and "not found" in bad.json()["detail"]


def test_a_worker_with_two_slots_tracks_two_runs_at_once(stack, tmp_path):
    """`motpipe worker --gpu-slots 2` (here on the CPU device, whose free memory it checks): two MOTRv2 tasks
    run side by side in two processes, each with its own model; both give the tracks of one task alone."""
    import torch

    from services.tracker.motrv2.config import MOTRv2Config
    from services.tracker.motrv2.model import MOTRv2

    torch.manual_seed(0)
    small = MOTRv2(MOTRv2Config(num_classes=1, enc_layers=1, dec_layers=2, dim_feedforward=256))
    (stack.root / "weights").mkdir(parents=True)
    torch.save({"model": small.state_dict()}, stack.root / "weights" / "small.pth")
    scene = render_scene(tmp_path / "clip", frames=4, seed=9, size=(320, 180))
    stack.env |= {"MOTPIPE_VISIBILITY_TIMEOUT_S": "900", "MOTPIPE_DEVICE": "cpu", "MOTPIPE_GPU_SLOT_GIB": "0.5"}
    stack.start_gateway()
    worker = stack.start_worker("w1", "--gpu-slots", "2")
    run = upload(stack, scene.video, "clip")
    assert stack.wait_stage(run, "detect")["stages"]["detect"]["state"] == "succeeded"
    body = {"run": run, "tracker": "motrv2", "weights": "weights/small.pth", "score_threshold": 0.0,
            "options": {"update_score_threshold": 0.0, "area_threshold": 0}}  # fmt: skip
    assert httpx.post(f"{stack.url}/track", json=body, timeout=10).status_code == 202
    answer = httpx.post(f"{stack.url}/track", json=body, timeout=10)  # the run tracks: this makes a child
    assert answer.status_code == 202 and answer.json()["parent"] == run, answer.text
    child = answer.json()["run"]
    stages = [stack.wait_stage(r, "track", timeout=300)["stages"]["track"] for r in (run, child)]
    assert all(stage["state"] == "succeeded" for stage in stages), stages
    (a_start, a_end), (b_start, b_end) = ((stage["started"], stage["finished"]) for stage in stages)
    assert a_start < b_end and b_start < a_end, stages  # side by side, not one after the other
    tracks = [(stack.root / "runs" / r / "tracks.txt").read_bytes() for r in (run, child)]
    assert tracks[0] == tracks[1] and len(tracks[0]) > 0
    assert worker.poll() is None
    log = (stack.logs / "w1.log").read_text()
    assert "2 slot(s) x 0.5 GiB on cpu" in log and "concurrency: 2" in log


def test_detect_with_dfine_on_a_worker_equals_the_in_process_model(stack, tmp_path, shared_dir, param_fill):
    """A filled D-FINE checkpoint under the data root goes through POST /detect and a real worker."""

    import torch

    from services.detector.dfine.configs import dfine_config
    from services.detector.dfine.detector import DFINEDetector, load_dfine
    from services.detector.dfine.model import DFINE
    from services.detector.engine import run_detection
    from shared.frames import open_frames
    from shared.schemas import DetectOptions

    fill = param_fill
    state = {k: torch.from_numpy(fill.fill_value(k, list(v.shape))) if v.is_floating_point() else v
             for k, v in DFINE(dfine_config("n", "coco")).state_dict().items()}  # fmt: skip
    weights = stack.root / "weights" / "dfine_n_coco.pth"
    weights.parent.mkdir(parents=True)
    torch.save({"model": state}, weights)
    scene = render_scene(tmp_path / "clip", frames=3, seed=9, size=(320, 180))
    stack.start_gateway()
    stack.start_worker("w1")
    fields = {"detector": "dfine", "weights": "weights/dfine_n_coco.pth", "size": "n", "dataset": "coco",
              "score_threshold": "0.3", "sequence": "clip"}  # fmt: skip
    with open(scene.video, "rb") as handle:
        answer = httpx.post(f"{stack.url}/detect", files={"file": ("clip.mp4", handle)}, data=fields, timeout=60)
    assert answer.status_code == 202, answer.text
    run = answer.json()["run"]
    record = stack.wait_stage(run, "detect", timeout=120)
    assert record["stages"]["detect"]["state"] == "succeeded", record
    served = read_det_db(stack.root / "runs" / run / "det_db.json")
    options = DetectOptions(detector="dfine", score_threshold=0.3)
    direct = run_detection(open_frames(scene.video), DFINEDetector(load_dfine(weights, "n", "coco")), options)
    assert sum(len(d) for d in direct.per_frame.values()) > 0
    for frame, dets in direct.per_frame.items():
        np.testing.assert_allclose(served[f"clip/img1/{frame:06d}"], np.round(dets[:, :5], 2), atol=0.006)
    with open(scene.video, "rb") as handle:
        bad = httpx.post(f"{stack.url}/detect", files={"file": ("clip.mp4", handle)},
                         data={"detector": "dfine", "weights": "weights/none.pth"}, timeout=60)  # fmt: skip
    assert bad.status_code == 400 and "weights" in bad.json()["detail"]


def test_a_redis_restart_without_persistence_loses_no_run(stack, tmp_path):
    """Runs, a sweep and a training job queued while no worker runs; Redis is wiped (a restart without
    persistence); the worker that starts afterwards finds what waits for a message that is gone and queues it
    again: the runs are detected, the sweep's children tracked and evaluated, the job started."""
    import redis

    scene = render_scene(tmp_path / "clip", frames=20, seed=9, size=(320, 180))
    stack.env |= {"MOTPIPE_STAGE_STALE_S": "3"}
    stack.start_gateway()
    first = stack.start_worker("w0")
    parent = upload(stack, scene.video, "parent")
    assert stack.wait_stage(parent, "detect")["stages"]["detect"]["state"] == "succeeded"
    with open(scene.gt_txt, "rb") as handle:
        assert httpx.post(f"{stack.url}/runs/{parent}/gt", files={"file": ("gt.txt", handle)}).status_code == 201
    stack.kill(first)
    runs = [upload(stack, scene.video, f"s{i}") for i in range(2)]
    assert all(stack.run(r)["stages"]["detect"]["state"] == "pending" for r in runs)
    grid = {"lost_track_buffer": [5, 30]}
    sweep = httpx.post(f"{stack.url}/sweeps", json={"run": parent, "tracker": "bytetrack", "grid": grid}).json()
    (stack.root / "w.pth").write_bytes(b"not a checkpoint")
    job = httpx.post(f"{stack.url}/train", json={"runs": [parent], "weights": "w.pth", "epochs": 1}).json()["job"]
    redis.Redis.from_url(REDIS_URL).flushdb()  # what a Redis restart without persistence leaves
    time.sleep(3.5)
    stack.start_worker("w1")
    for run in runs:
        record = stack.wait_stage(run, "detect", timeout=90)
        assert record["stages"]["detect"]["state"] == "succeeded", record
    assert "had no message in the broker: queued again" in (stack.logs / "w1.log").read_text()
    body = stack.poll(f"/sweeps/{sweep['sweep']}", lambda b: b["state"] in ("succeeded", "failed"), timeout=120)
    assert body["state"] == "succeeded" and body["progress"] == {"done": 2, "total": 2}, body
    assert all(row["HOTA"] > 0 for row in body["leaderboard"])
    record = stack.poll(f"/train/{job}", lambda b: b["state"] != "pending", timeout=90)
    assert record["state"] == "failed" and "w.pth" in record["error"], (record["state"], record["error"])


def test_tracking_again_through_a_worker_leaves_the_first_metrics_byte_identical(stack, tmp_path):
    """Also the run index on a real PostgreSQL, as the gateway and a worker both write it (every other service
    test uses the default SQLite index)."""
    from tests.test_run_index import postgres_database

    url, drop = postgres_database()
    stack.env["MOTPIPE_DATABASE_URL"] = url
    stack.cleanups.append(drop)
    scene = render_scene(tmp_path / "clip", frames=30, seed=4, size=(320, 180))
    stack.start_gateway()
    stack.start_worker("w1")
    run = upload(stack, scene.video, "again")
    assert stack.wait_stage(run, "detect")["stages"]["detect"]["state"] == "succeeded"
    assert httpx.post(f"{stack.url}/track", json={"run": run}, timeout=10).status_code == 202
    assert stack.wait_stage(run, "track")["stages"]["track"]["state"] == "succeeded"
    with open(scene.gt_txt, "rb") as handle:
        assert httpx.post(f"{stack.url}/runs/{run}/gt", files={"file": ("gt.txt", handle)}).status_code == 201
    first = httpx.get(f"{stack.url}/eval/{run}", timeout=60).content
    stored = (stack.root / "runs" / run / "metrics.json").read_bytes()
    answer = httpx.post(f"{stack.url}/track", json={"run": run, "score_threshold": 0.9}, timeout=10).json()
    child = answer["run"]
    assert child != run and answer["parent"] == run
    assert stack.wait_stage(child, "track")["stages"]["track"]["state"] == "succeeded"
    again = httpx.get(f"{stack.url}/eval/{child}", timeout=60).json()  # the parent's ground truth, read through it
    assert again["trackeval"]["HOTA"] != json.loads(first)["trackeval"]["HOTA"]
    assert httpx.get(f"{stack.url}/eval/{run}", timeout=60).content == first
    assert (stack.root / "runs" / run / "metrics.json").read_bytes() == stored
    listed = {r["run"]: r for r in httpx.get(f"{stack.url}/runs", timeout=10).json()["runs"]}
    assert (
        listed[run]["HOTA"] == json.loads(first)["trackeval"]["HOTA"] and listed[run]["stages"]["eval"] == "succeeded"
    )
    assert listed[child]["HOTA"] == again["trackeval"]["HOTA"] and listed[child]["parent"] == run
    assert [r["run"] for r in httpx.get(f"{stack.url}/runs", params={"parent": run}).json()["runs"]] == [child]
