"""How long a long run's review page takes to become interactive, in headless Chromium (Debian's chromium
and chromium-driver) against a gateway on this machine.

    .venv/bin/python scripts/review_speed.py [--frames 20000] [--repeat 3]

Makes a synthetic clip of `--frames` frames (320x180) with its ground truth, tracks that switch one id half-way
and miss 5% of the boxes, stores them as a run, starts the gateway (file broker, temporary data root) and
times, from navigation to: the first frame's boxes drawn (`window.reviewState.drawn`), the error events on the
timeline (`#event-counts`), and a jump to the next ID switch shown (`#review[data-frame]`). Prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_run(root: Path, frames: int) -> str:
    from shared.formats.mot_txt import read_mot, write_mot
    from shared.run_store import RunStore
    from shared.synth import render_scene
    from shared.video import probe_video

    scene = render_scene(root / "clip", frames=frames, seed=3, size=(320, 180))
    gt = read_mot(scene.gt_txt)
    kept = gt.select(np.random.default_rng(0).random(len(gt)) > 0.05)
    tracks = dataclasses.replace(kept, id=np.where((kept.id == 2) & (kept.frame > frames // 2), 99, kept.id))
    store = RunStore(root / "data")
    run = store.create({"upload": "long.mp4", "video": dataclasses.asdict(probe_video(scene.video))}, name="long").run
    folder = store.run_dir(run)
    shutil.copyfile(scene.video, folder / "input.mp4")
    store.update(run, lambda r: r.inputs.update(frames=str(folder / "input.mp4")))
    shutil.copyfile(scene.gt_txt, folder / "gt.txt")
    write_mot(folder / "tracks.txt", tracks)
    store.start_stage(run, "track", {"tracker": "bytetrack"})
    store.succeed_stage(run, "track", ["tracks.txt"])
    return run


def wait(driver, script: str, timeout: float = 60) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if driver.execute_script(f"return {script}"):
            return time.perf_counter()
        time.sleep(0.01)
    raise TimeoutError(script)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from scripts.ui_screenshots import chromium_driver

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        run = make_run(root, args.frames)
        print(f"made a {args.frames}-frame run in {time.perf_counter() - began:.0f} s")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "MOTPIPE_DATA_ROOT": str(root / "data")}
        server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "services.gateway.app:create",
                                   "--port", str(port)], cwd=REPO, env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            rows = []
            driver = chromium_driver(1280, 800)
            try:
                for attempt in range(args.repeat):
                    start = time.perf_counter()
                    driver.get(f"{url}/ui/runs/{run}/review")
                    drawn = wait(driver, "window.reviewState && window.reviewState.drawn.length > 0")
                    events = wait(driver, "document.getElementById('event-counts').textContent.includes('ID switch')")
                    driver.find_element("id", "next-idsw").click()
                    clicked = time.perf_counter()
                    jumped = wait(driver, "document.getElementById('review').dataset.frame !== '1'")
                    rows.append((attempt + 1, drawn - start, events - start, jumped - clicked))
            finally:
                driver.quit()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    table = Table(title=f"review page of a {args.frames:,}-frame run, headless Chromium (s)")
    for column in ("load", "first frame drawn", "events on the timeline", "jump to the ID switch"):
        table.add_column(column, justify="right")
    for attempt, drawn, events, jump in rows:
        table.add_row(str(attempt), f"{drawn:.2f}", f"{events:.2f}", f"{jump:.2f}")
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
