"""`motpipe serve`'s embedded worker, kept alive: a worker process that dies (OOM, a kill, a crash) is started
again, and the new worker's reaper queues the run that was in flight once its heartbeat is stale (see
shared/tasks.py), so runs neither stay `pending` behind a dead worker nor `running` forever."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading

log = logging.getLogger("motpipe.serve")


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
            if self._stopping.is_set():
                return
            log.warning("the embedded worker (pid %s) exited with %s; starting a new one", self.process.pid, code)
            if self._stopping.wait(self.restart_delay_s):
                return
            self.restarts += 1
            self.process = subprocess.Popen(self.command)

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
