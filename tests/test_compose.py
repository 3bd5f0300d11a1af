"""No Docker engine runs here, so the compose file's structure is checked instead."""

import importlib
import re

import pytest

from tests.conftest import REPO

yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_services_of_the_design_card(compose):
    expected = {
        "redis",
        "gateway",
        "detector-api",
        "tracker-api",
        "evaluator-api",
        "trainer-api",
        "dashboard",
        "gpu-worker",
        "cpu-worker",
        "flower",
    }
    assert expected <= set(compose["services"])


def test_redis_has_volume_and_healthcheck(compose):
    redis = compose["services"]["redis"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_gateway_on_8000_routes_every_contract_path(compose):
    assert "8000:8000" in compose["services"]["gateway"]["ports"]
    conf = (REPO / "deploy" / "gateway" / "nginx.conf").read_text()
    upstreams = dict(re.findall(r"upstream (\w+)\s*{\s*server ([\w-]+):8000;", conf))
    assert set(upstreams.values()) <= set(compose["services"])
    for path in ("/detect", "/track", "/eval", "/train", "/sweeps", "/ui", "/runs", "/healthz", "/metrics"):
        assert re.search(rf"location [=~^ ]*{re.escape(path)}", conf), path
    routes = re.search(r"location ~ \^/runs/\[\^/\]\+/\(([^)]*)\)\$\s*{\s*proxy_pass http://evaluator", conf)
    assert routes and set(routes.group(1).split("|")) >= {"gt", "doctor", r"overlay\.mp4", "boxes", "video"}


def test_gpu_worker_reserves_an_nvidia_gpu(compose):
    devices = compose["services"]["gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "--queues" in compose["services"]["gpu-worker"]["command"]
    assert "gpu" in compose["services"]["gpu-worker"]["command"]
    assert compose["services"]["gpu-worker"]["command"][-2:] == ["--gpu-slots", "${MOTPIPE_GPU_SLOTS:-1}"]
    assert "cpu" in compose["services"]["cpu-worker"]["command"]


def test_apis_and_workers_share_the_data_volume_and_redis(compose):
    for name in ("detector-api", "tracker-api", "evaluator-api", "trainer-api", "gpu-worker", "cpu-worker"):
        service = compose["services"][name]
        assert "data:/data" in service["volumes"], name
        assert service["environment"]["MOTPIPE_BROKER_URL"].startswith("redis://redis:6379")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["environment"]["MOTPIPE_DATABASE_URL"].startswith("postgresql+psycopg://motpipe:")
        assert "@postgres:5432/motpipe" in service["environment"]["MOTPIPE_DATABASE_URL"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "data" in compose["volumes"] and "postgres-data" in compose["volumes"]
    assert "pg_isready" in compose["services"]["postgres"]["healthcheck"]["test"]


def test_commands_and_dockerfiles_exist(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            assert (REPO / build["dockerfile"]).is_file(), name
        command = service.get("command", [])
        if "--factory" in command:
            module, _, attr = command[command.index("--factory") + 1].partition(":")
            assert callable(getattr(importlib.import_module(module), attr)), name
    assert "FROM pytorch/pytorch" in (REPO / "deploy" / "Dockerfile.worker").read_text()
    assert "python:3.11-slim" in (REPO / "deploy" / "Dockerfile.api").read_text()
    for name in ("Dockerfile.api", "Dockerfile.worker"):  # the C kernels need setup.py and a compiler
        text = (REPO / "deploy" / name).read_text()
        assert "setup.py" in text and " gcc " in text, name


def test_api_image_has_no_torch_and_the_api_runs_without_it(tmp_path, scene):
    """The base dependencies (what Dockerfile.api installs) hold no torch; the gateway app works with torch,
    torchvision and trackers made unimportable."""
    import subprocess
    import sys
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    assert not any(name in base for name in ("torch", "trackers", "tensorboard"))
    assert any(d.startswith("torch") for d in project["optional-dependencies"]["models"])
    assert 'pip install --no-cache-dir ".[models]"' in (REPO / "deploy" / "Dockerfile.worker").read_text()
    script = """
import sys
for name in ("torch", "torchvision", "trackers", "tensorboard"):
    sys.modules[name] = None  # importing any of them now fails
from fastapi.testclient import TestClient
from services.gateway.app import create
from shared.settings import Settings
client = TestClient(create(Settings(data_root=sys.argv[1])))
assert client.get("/healthz").status_code == 200
assert client.get("/runs").json() == {"runs": [], "next": None, "total": 0}
assert client.get("/ui").status_code == 200
answer = client.post("/track", json={"run": "0123456789abcdef", "tracker": "bytetrack", "options": {"bogus": 1}})
assert answer.status_code == 422, answer.text
# every route that names a tracker or model answers without torch: queued, or refused for what is wrong
from pathlib import Path
from shared.run_store import RunStore
root = Path(sys.argv[1])
store = RunStore(root)
run = store.create(inputs={"frames": sys.argv[2]}).run
(store.run_dir(run) / "det_db.json").write_text('{"s/img1/000001": []}')
store.succeed_stage(run, "detect", ["det_db.json"])
(root / "w.pth").write_bytes(b"not read by the API")
gt = client.post(f"/runs/{run}/gt", files={"file": ("gt.txt", b"1,1,0,0,5,5,1,1,1\\n")})
assert gt.status_code == 201, gt.text
requests = [
    ("/track", {"run": run, "tracker": "motrv2", "weights": "w.pth", "options": {"miss_tolerance": 5}}, 202),
    ("/track", {"run": run, "tracker": "motrv2", "weights": "w.pth", "options": {"bogus": 1}}, 422),
    ("/track", {"run": run, "tracker": "bytetrack"}, 202),
    ("/detect", {"path": "clip.mp4", "detector": "dfine", "weights": "n_coco.pth"}, 202),
    ("/detect", {"path": "clip.mp4", "detector": "dfine", "weights": "n_coco.pth", "size": "l"}, 422),
    ("/detect", {"path": "clip.mp4", "detector": "dfine", "weights": "w.pth"}, 422),
    ("/detect", {"path": "clip.mp4", "detector": "dfine", "weights": "w.pth", "size": "xxl"}, 422),
    ("/detect", {"path": "clip.mp4", "detector": "motion"}, 202),
    ("/sweeps", {"run": run, "tracker": "motrv2", "weights": ["w.pth"], "grid": {"miss_tolerance": [5, 10]}}, 202),
    ("/sweeps", {"run": run, "tracker": "bytetrack", "grid": {"lost_track_buffer": [5, 10]}}, 202),
    ("/train", {"runs": [run], "weights": "w.pth", "epochs": 1}, None),
    ("/train", {"model": "dfine", "runs": [run], "weights": "n_coco.pth"}, 202),
    ("/train", {"model": "dfine", "runs": [run], "weights": "n_coco.pth", "size": "x"}, 422),
]
import shutil
shutil.copy(sys.argv[2], root / "clip.mp4")
for path, body, expected in requests:
    answer = client.post(path, json=body)
    assert answer.status_code < 500 and (expected is None or answer.status_code == expected), (path, body, answer.text)
    if expected == 422 and "n_coco" in str(body):
        assert "this checkpoint is D-FINE N with 80 classes (COCO)" in answer.json()["detail"], answer.text
print("ok")
"""
    import torch  # here, not in the API's process: a checkpoint whose header says D-FINE N / COCO

    heads = {f"decoder.dec_score_head.{i}.weight": torch.zeros(80, 128) for i in range(3)}
    torch.save({"model": {"encoder.input_proj.0.conv.weight": torch.zeros(128, 512, 1, 1), **heads}},
               tmp_path / "n_coco.pth")  # fmt: skip
    args = [sys.executable, "-c", script, str(tmp_path), str(scene.video)]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
