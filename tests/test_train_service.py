"""`POST /train` on the real stack: gateway and a Celery worker on Redis train a small MOTRv2 from a run
(uploaded video, its det_db and ground truth), a grid shares the workers, a D-FINE N fine-tunes from the
same run (`detector.train`), and bad requests are refused."""

from __future__ import annotations

import httpx
import pytest
import torch

from services.detector.dfine.configs import dfine_config
from services.detector.dfine.model import DFINE
from services.tracker.motrv2.config import MOTRv2Config
from services.tracker.motrv2.training.weights import fresh_model
from shared.synth import render_scene
from tests.stack import Stack, upload

pytestmark = pytest.mark.service
SMALL = MOTRv2Config(num_classes=1, enc_layers=1, dec_layers=2, dim_feedforward=256)
FAST = {"lr_backbone": 0, "sampler_length": 2, "sample_interval": 1, "augment": False, "epochs": 1}


def wait_job(stack: Stack, job: str, timeout: float = 300) -> dict:
    return stack.poll(f"/train/{job}", lambda body: body["state"] in ("succeeded", "failed"), timeout)


def test_train_from_a_run_through_gateway_and_worker(stack, tmp_path):
    scene = render_scene(tmp_path / "clip", frames=16, seed=2, size=(256, 144))
    stack.root.mkdir(parents=True, exist_ok=True)
    torch.save({"model": fresh_model(SMALL).state_dict()}, stack.root / "init.pth")
    stack.start_gateway()
    stack.start_worker("w1")
    run = upload(stack, scene.video, "court")
    assert stack.wait_stage(run, "detect")["stages"]["detect"]["state"] == "succeeded"
    with open(scene.gt_txt, "rb") as handle:
        assert httpx.post(f"{stack.url}/runs/{run}/gt", files={"file": ("gt.txt", handle)}).status_code == 201

    # refused at the request, nothing queued
    bad = [
        ({"runs": [run], "weights": "init.pth", "strategy": "bold"}, 422),
        ({"runs": [run], "weights": "../init.pth"}, 400),
        ({"runs": [run], "weights": "missing.pth"}, 400),
        ({"runs": ["0123456789abcdef"], "weights": "init.pth"}, 404),
        ({"runs": [run], "data": "x", "weights": "init.pth"}, 422),
        ({"runs": [run], "weights": "init.pth", "grid": {"colour": ["red"]}}, 422),
        ({"runs": [run], "weights": "init.pth", "grid": {"lr": [-1]}}, 422),
    ]
    for body, status in bad:
        answer = httpx.post(f"{stack.url}/train", json=body, timeout=10)
        assert answer.status_code == status, (body, answer.text)
        assert "detail" in answer.json()
    assert not (stack.root / "jobs").exists() or not list((stack.root / "jobs").iterdir())

    answer = httpx.post(f"{stack.url}/train", json={"runs": [run], "weights": "init.pth", **FAST}, timeout=10)
    assert answer.status_code == 202, answer.text
    job = answer.json()["job"]
    assert answer.json()["status_url"] == f"/train/{job}"
    record = wait_job(stack, job)
    assert record["state"] == "succeeded", record
    assert record["finished_epochs"] == 1 and record["progress"] == {"done": 15, "total": 15}
    # what the API named and queued survives the worker's start (the index lists it by that name)
    assert record["name"] == "motrv2 from init.pth on 1 run" and record["task"]["name"] == "tracker.train"
    listed = httpx.get(f"{stack.url}/train", params={"q": "init.pth"}).json()["jobs"]
    assert [row["name"] for row in listed] == ["motrv2 from init.pth on 1 run"]
    assert record["trainable_params"] == sum(
        p.numel() for n, p in fresh_model(SMALL).named_parameters() if not n.startswith("backbone")
    )
    assert record["data"]["train_sequences"] == [run]
    download = httpx.get(f"{stack.url}/train/{job}/artifacts/checkpoint.pth", timeout=30)
    assert download.status_code == 200
    (tmp_path / "got.pth").write_bytes(download.content)
    state = torch.load(tmp_path / "got.pth", weights_only=True)
    assert state["epoch"] == 0 and set(state["model"]) == set(fresh_model(SMALL).state_dict())
    assert httpx.get(f"{stack.url}/train/{job}/artifacts/job.json").status_code == 404
    assert httpx.get(f"{stack.url}/train/{job}/artifacts/..%2Finit.pth").status_code == 404
    assert httpx.get(f"{stack.url}/train/ffffffffffffffff").status_code == 404

    # a grid: one job per combination, the parent's table
    body = {"runs": [run], "weights": "init.pth", **FAST, "max_steps": 2, "grid": {"lr": [1e-4, 2e-4]}}
    answer = httpx.post(f"{stack.url}/train", json=body, timeout=10)
    assert answer.status_code == 202, answer.text
    record = wait_job(stack, answer.json()["job"])
    assert record["state"] == "succeeded", record
    assert [row["lr"] for row in record["grid"]] == [1e-4, 2e-4]
    assert all(row["state"] == "succeeded" for row in record["grid"])

    # D-FINE: the same endpoint with model dfine, task detector.train, the run's video and ground truth
    torch.manual_seed(0)
    torch.save({"model": DFINE(dfine_config("n", "coco")).state_dict()}, stack.root / "dfine_n.pth")
    dfine = {"model": "dfine", "runs": [run], "weights": "dfine_n.pth", "size": "n", "dataset": "coco",
             "classes": 'player=person,ball="sports ball"', "img_size": 256, "batch_size": 4, "augment": False,
             "max_steps": 2}  # fmt: skip
    for body, status in [({**dfine, "size": "q"}, 422), ({**dfine, "grid": {"lr": [1]}}, 422),
                         ({**dfine, "weights": "missing.pth"}, 400)]:  # fmt: skip
        answer = httpx.post(f"{stack.url}/train", json=body, timeout=10)
        assert answer.status_code == status, (body, answer.text)
    answer = httpx.post(f"{stack.url}/train", json=dfine, timeout=10)
    assert answer.status_code == 202, answer.text
    record = wait_job(stack, answer.json()["job"])
    assert record["state"] == "succeeded" and record["model"] == "dfine", record
    assert record["progress"]["done"] == 2 and record["data"]["classes"] == ["player", "ball"]
    download = httpx.get(f"{stack.url}/train/{record['job']}/artifacts/checkpoint.pth", timeout=30)
    (tmp_path / "dfine.pth").write_bytes(download.content)
    state = torch.load(tmp_path / "dfine.pth", weights_only=True)
    assert state["motpipe"]["classes"] == ["player", "ball"] and "module" in state["ema"]
    page = httpx.get(f"{stack.url}/ui/train/{record['job']}", timeout=10)  # the dashboard's job page
    assert page.status_code == 200 and "mAP50" in page.text and "HOTA" not in page.text
    assert f'<a href="/train/{record["job"]}/artifacts/plots/loss.png" target="_blank"' in page.text  # full size
    assert record["finished_epochs"] == 0 and "(max_steps=2 ended training in epoch 1)" in page.text  # not "0/1" alone
    listed = httpx.get(f"{stack.url}/train", params={"model": "dfine"}, timeout=10).json()["jobs"]
    assert [job["epochs"] for job in listed] == [
        {"finished": 0, "planned": record["planned_epochs"], "max_steps": 2}
    ]  # the index says so too
    assert (
        f'0/{record["planned_epochs"]} <span class="muted">(ended by max_steps=2)</span>'
        in httpx.get(f"{stack.url}/ui/train", timeout=10).text
    )
    assert f"<h1>dfine from dfine_n.pth on 1 run <code>{record['job']}</code></h1>" in page.text  # its name
    # afterwards: the fine-tune writes the det_db of a run (POST /detect with the job's weights)
    video = httpx.get(f"{stack.url}/runs/{run}").json()["inputs"]["frames"]
    detect = {"path": video, "detector": "dfine", "size": "n",  # shown relative to the data root
              "dataset": "coco", "weights": f"jobs/{record['job']}/checkpoint.pth", "score_threshold": 0.0}  # fmt: skip
    answer = httpx.post(f"{stack.url}/detect", json=detect, timeout=10)
    assert answer.status_code == 202, answer.text
    detected = stack.wait_stage(answer.json()["run"], "detect")
    assert detected["stages"]["detect"]["state"] == "succeeded", detected
