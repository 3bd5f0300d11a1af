"""The real stack for service tests: a gateway and Celery workers as processes on the real Redis at
127.0.0.1:6379 (database 14, flushed before each test), sharing one data root."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO

REDIS_DB = 14  # a database of its own, flushed before each test
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
VISIBILITY_TIMEOUT_S = 6


def redis_or_skip():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis at 127.0.0.1:6379 (CI starts one; run `redis-server` locally)")
    client.flushdb()
    return client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """A gateway and workers as real processes sharing one data root and one Redis database."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {
            **os.environ,
            "MOTPIPE_DATA_ROOT": str(root),
            "MOTPIPE_BROKER_URL": REDIS_URL,
            "MOTPIPE_RESULT_BACKEND": REDIS_URL,
            "MOTPIPE_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
            "MOTPIPE_TASK_TIME_LIMIT_S": "300",
            "MOTPIPE_DEVICE": "cpu",
        }
        self.env.pop("MOTPIPE_API_TOKEN", None)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []
        self.cleanups: list = []  # run after the processes stopped (e.g. drop a test database)
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def _spawn(self, name: str, args: list[str], cwd: Path = REPO) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def start_gateway(self) -> None:
        self._spawn("gateway", ["-m", "uvicorn", "--factory", "services.gateway.app:create", "--port", str(self.port)])
        self.wait_healthy()

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        logs = "\n".join(p.read_text()[-3000:] for p in self.logs.glob("*.log"))
        raise AssertionError("gateway did not become healthy:\n" + logs)

    def start_worker(self, name: str, *extra: str) -> subprocess.Popen:
        return self._spawn(
            name, ["-m", "services.gateway.cli", "worker", "--queues", "gpu,cpu", "--hostname", f"{name}@%h", *extra]
        )

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL the worker and its pool children (their own process group)."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(proc)
        while self.cleanups:
            self.cleanups.pop()()

    def run(self, run_id: str) -> dict:
        return httpx.get(f"{self.url}/runs/{run_id}", timeout=10).json()

    def poll(self, path: str, finished, timeout: float = 300) -> dict:
        """GET `path` until `finished(body)`; on time-out fail with the body and the logs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = httpx.get(f"{self.url}{path}", timeout=10).json()
            if finished(body):
                return body
            time.sleep(0.5)
        logs = "\n".join(p.read_text()[-3000:] for p in self.logs.glob("*.log"))
        raise AssertionError(f"{path} did not finish: {body}\n{logs}")

    def wait_stage(self, run_id: str, stage: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = self.run(run_id)
            if record["stages"][stage]["state"] in ("succeeded", "failed"):
                return record
            time.sleep(0.3)
        logs = "\n".join(p.read_text()[-2000:] for p in self.logs.glob("*.log"))
        raise AssertionError(f"{stage} of {run_id} did not finish: {self.run(run_id)}\n{logs}")


def upload(stack: Stack, video: Path, sequence: str) -> str:
    with open(video, "rb") as handle:
        answer = httpx.post(
            f"{stack.url}/detect",
            files={"file": (video.name, handle, "video/mp4")},
            data={"detector": "motion", "sequence": sequence},
            timeout=60,
        )
    assert answer.status_code == 202, answer.text
    assert answer.json()["status_url"] == f"/runs/{answer.json()['run']}"
    return answer.json()["run"]
