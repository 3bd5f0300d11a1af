from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

# Intel MKL picks its kernels by CPU: on an AVX-512/AMX machine its GEMM and vector math round differently
# from the machines the reference vectors were made and first checked on (float64 training outputs drifted
# by 6e-6; a tie in L's query selection broke the other way), and 14 parity tests failed. Its AVX2 path,
# which every x86 machine of ours has, gives the same numbers everywhere (its "COMPATIBLE" path does too
# but makes GEMM 3x slower: the suite took 20 min). Set before torch loads MKL; workers and commands that
# the tests start inherit it.
os.environ.setdefault("MKL_CBWR", "AVX2")
# Every process a test starts inherits this mark, so the end of the session can tell whether one outlived it.
SESSION_MARK = f"MOTPIPE_TEST_SESSION={os.getpid()}"
os.environ["MOTPIPE_TEST_SESSION"] = str(os.getpid())
# the default data root (./motpipe-data) is the working directory's: tests that do not name one use a temporary
# one, so that nothing is written into the checkout (Celery's file broker is made under it at import)
os.environ.setdefault("MOTPIPE_DATA_ROOT", tempfile.mkdtemp(prefix="motpipe-test-data-"))

import signal  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from shared.synth import render_scene  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """`../shared` beside the repository (reference data and the group's samples)."""
    if not (SHARED / "samples").is_dir():
        pytest.skip(f"{SHARED} is absent: reference data and samples live there, not in the repo")
    return SHARED


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    """A small synthetic clip with exact ground truth, rendered once per test session."""
    return render_scene(tmp_path_factory.mktemp("scene"), frames=60, seed=3, size=(640, 360))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x,y,w,h boxes: rows of `a` against rows of `b`."""
    a_max, b_max = a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:]
    wh = np.clip(np.minimum(a_max, b_max) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = a[:, None, 2] * a[:, None, 3] + b[None, :, 2] * b[None, :, 3] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def recall(gt_frames: np.ndarray, gt_boxes: np.ndarray, per_frame: dict[int, np.ndarray], iou: float = 0.5) -> float:
    """Share of ground-truth boxes covered by some detection with IoU >= `iou` in the same frame."""
    hits = 0
    for frame in np.unique(gt_frames):
        gt = gt_boxes[gt_frames == frame]
        dets = per_frame.get(int(frame), np.zeros((0, 4)))[:, :4]
        if len(dets):
            hits += int((iou_matrix(gt, dets).max(axis=1) >= iou).sum())
    return hits / max(1, len(gt_boxes))


@pytest.fixture(scope="session")
def param_fill(shared_dir):
    """`../shared/reference/param_fill.py`: the deterministic weight fill the parity vectors were made with."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("param_fill", shared_dir / "reference" / "param_fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _untracked() -> set[str] | None:
    """Files git does not know and does not ignore in the checkout (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                             capture_output=True, text=True, timeout=30, check=True).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {line[3:] for line in out.splitlines() if line.startswith("??")}


def pytest_sessionstart(session):
    session.config._untracked_before = _untracked()


def processes_with(environment_entry: str) -> list[int]:
    """Live processes (not this one) whose environment holds `environment_entry` (`NAME=value`)."""
    needle = environment_entry.encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                if needle in handle.read() + b"\0":
                    found.append(int(entry.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def _ours_left() -> list[int]:
    """Marked processes, less multiprocessing's resource tracker of this process (it ends when pytest does)."""
    left = []
    for pid in processes_with(SESSION_MARK):
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            tracker = b"multiprocessing.resource_tracker" in open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if not (tracker and int(stat[1]) == os.getpid()):
            left.append(pid)
    return left


def _left_running(timeout: float = 15.0) -> list[str]:
    """Processes the tests started that are still alive `timeout` seconds from now (then killed)."""
    deadline = time.monotonic() + timeout
    while (alive := _ours_left()) and time.monotonic() < deadline:
        time.sleep(0.5)
    described = []
    for pid in alive:
        try:
            described.append(f"{pid}: " + open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()[:120])
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue
    return described


def pytest_sessionfinish(session, exitstatus):
    """The suite leaves no process running (servers, workers, browsers: a test stops what it starts) and
    writes nothing into the repository (runs, brokers and caches live in temporary folders)."""
    if os.path.isdir("/proc") and (left := _left_running()):
        print("\nprocesses started by the tests outlived them (now killed):\n  " + "\n  ".join(left))
        session.exitstatus = 1
    before = getattr(session.config, "_untracked_before", None)
    after = _untracked()
    if before is None or after is None:
        return
    new = sorted(after - before)
    if new:
        print(f"\nthe test suite left files in the repository: {new[:10]}")
        session.exitstatus = 1


@pytest.fixture
def stack(tmp_path):
    """A gateway + workers stack on the real Redis (tests/stack.py); skips, saying why, without Redis."""
    from tests.stack import Stack, redis_or_skip

    redis_or_skip()
    stack = Stack(tmp_path / "data")
    yield stack
    stack.stop()
