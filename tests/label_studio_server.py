"""A real Label Studio for the annotation-loop tests: the `label-studio` package in its own virtual
environment (`make label-studio`: `.label-studio-venv`, or `MOTPIPE_TEST_LABEL_STUDIO=/path/to/label-studio`),
started on a free localhost port with a throw-away data folder, an admin user and a legacy API token (legacy
tokens enabled for its organisation, as an older deployment has them), and a personal access token made
through its API; stopped, with everything it started, when the tests are done."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO

LEGACY_TOKEN = "a3f1c2d4e5b6a7f8091a2b3c4d5e6f708192a3b4"


@dataclass
class LabelStudioServer:
    url: str
    legacy_token: str
    personal_token: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def label_studio_binary() -> str | None:
    given = os.environ.get("MOTPIPE_TEST_LABEL_STUDIO")
    if given:
        return given
    local = REPO / ".label-studio-venv" / "bin" / "label-studio"
    return str(local) if local.exists() else shutil.which("label-studio")


def start_label_studio(folder: Path) -> LabelStudioServer:
    binary = label_studio_binary()
    if binary is None:
        pytest.skip("Label Studio is not installed (make label-studio, or MOTPIPE_TEST_LABEL_STUDIO=...)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "label-studio-data"
    data.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOTPIPE_LABEL", "LABEL_STUDIO"))}
    env |= {"LABEL_STUDIO_BASE_DATA_DIR": str(data), "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true", "COLLECT_ANALYTICS": "false"}  # fmt: skip
    log = folder / "label-studio.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary, "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port), "--data-dir",
             str(data), "--username", "annotator@example.com", "--password", "motpipe-tests-only",
             "--user-token", LEGACY_TOKEN],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=folder,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    server = LabelStudioServer(url, LEGACY_TOKEN, "", process, log)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"Label Studio ended while starting:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    else:
        server.stop()
        raise AssertionError(f"Label Studio did not start in 240 s:\n{log.read_text()[-3000:]}")
    made = httpx.post(f"{url}/api/token/", headers={"Authorization": f"Token {LEGACY_TOKEN}"}, timeout=30)
    if made.status_code not in (200, 201) or "token" not in made.json():
        server.stop()
        raise AssertionError(f"could not make a personal access token: {made.status_code} {made.text[:300]}")
    server.personal_token = made.json()["token"]
    return server
