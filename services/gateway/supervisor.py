"""`motpipe serve`'s embedded worker, kept alive: a worker process that dies (OOM, a kill, a crash) is started
again, and the new worker's reaper queues the run that was in flight once its heartbeat is stale (see
shared/tasks.py), so runs neither stay `pending` behind a dead worker nor `running` forever."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

log = logging.getLogger("motpipe.serve")
# a worker that exits cleanly or on SIGTERM/SIGINT was asked to stop; anything else (SIGKILL, OOM, a crash) died
SHUTDOWN_CODES = {0, -signal.SIGTERM, -signal.SIGINT}


class WorkerSupervisor:
    def __init__(self, command: list[str], restart_delay_s: float = 1.0):
        self.command = command
        self.restart_delay_s = restart_delay_s
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            code = self.process.wait()
            if self._stopping.is_set() or code in SHUTDOWN_CODES:
                return  # `motpipe serve` is stopping (Ctrl-C or SIGTERM reach the whole process group)
            log.warning("the embedded worker (pid %s) exited with %s; starting a new one", self.process.pid, code)
            if self._stopping.wait(self.restart_delay_s):
                return
            self.restarts += 1
            self.process = subprocess.Popen(self.command)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Celery's warm shutdown); a worker still alive after `timeout` is killed with its pool, so
        `motpipe serve` never leaves an orphan worker behind."""
        self._stopping.set()
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                for pid in [*_children(self.process.pid), self.process.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.process.wait()


def _children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    out = []
    for task in tasks:
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out
