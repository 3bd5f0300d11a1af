"""`motpipe serve`'s embedded worker: kept alive while serve runs, and gone within seconds once serve ends.

Alive: a worker process that dies (OOM, a kill, a crash) is started again, and the new worker's reaper queues
the run that was in flight once its heartbeat is stale (see shared/tasks.py), so runs neither stay `pending`
behind a dead worker nor `running` forever.

Gone: the worker runs in a session (and process group) of its own, so a signal sent to serve's group (a
terminal's Ctrl-C) reaches serve alone; a group-wide SIGTERM used to hit Celery's pool child before its main
process, which then re-forked the pool and hung in its warm shutdown, ignoring further SIGTERMs. serve stops
the worker itself (`WorkerSupervisor.stop`: SIGTERM, then SIGKILL to the worker's whole group after a
deadline). When serve cannot (SIGKILL, OOM kill), the worker notices that its parent is gone
(`exit_with_parent`, started before the worker's heavy imports) and ends itself and its pool the same way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time

log = logging.getLogger("motpipe.serve")
# a worker that exits cleanly or on SIGTERM/SIGINT was asked to stop; anything else (SIGKILL, OOM, a crash) died
SHUTDOWN_CODES = {0, -signal.SIGTERM, -signal.SIGINT}
# the environment variable naming the process a supervised worker must not outlive
PARENT_ENV = "MOTPIPE_SUPERVISOR_PID"
# how long a worker may take over its warm shutdown (finishing or giving back its task) before it is killed;
# with the parent check's period this keeps a stopped serve's worker gone well within 10 s
STOP_GRACE_S = 4.0


class WorkerSupervisor:
    def __init__(self, command: list[str], restart_delay_s: float = 1.0):
        self.command = command
        self.restart_delay_s = restart_delay_s
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # start/restart vs stop: stop must see the process it has to end
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def _spawn(self) -> None:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        self.process = subprocess.Popen(self.command, env=env, start_new_session=True)

    def start(self) -> None:
        with self._lock:
            self._spawn()
        self._thread.start()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            code = self.process.wait()
            if self._stopping.is_set() or code in SHUTDOWN_CODES:
                return
            log.warning("the embedded worker (pid %s) exited with %s; starting a new one", self.process.pid, code)
            if self._stopping.wait(self.restart_delay_s):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.restarts += 1
                self._spawn()

    def stop(self, timeout: float = STOP_GRACE_S) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL to the worker's process group: a worker still alive
        after `timeout`, and any pool process its main process left behind, so nothing of it survives."""
        with self._lock:
            self._stopping.set()
            process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # its own group (start_new_session): the pool included
        process.wait()


def exit_with_parent(grace_s: float = STOP_GRACE_S, period_s: float = 0.5) -> None:
    """In a worker started by `WorkerSupervisor`: end this process and everything it started once the
    supervisor is gone (its parent changes). SIGTERM first (Celery's warm shutdown; Python's default, which
    ends the process, while the worker is still importing), SIGKILL to the process group after `grace_s`.
    Does nothing in a worker that no supervisor started."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not parent.isdigit():
        return
    parent_pid = int(parent)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(period_s)
        log.warning("motpipe serve (pid %s) is gone: the embedded worker stops", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        kill_own_group()

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def kill_own_group() -> None:
    """SIGKILL this process with every process it started: its whole group when it leads one (a supervised
    worker does), else its descendants and then itself."""
    if os.getpgid(0) == os.getpid():
        os.killpg(0, signal.SIGKILL)
    for pid in descendants(os.getpid()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os._exit(1)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (children first, from /proc)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError), open(f"/proc/{current}/task/{task}/children") as handle:
                found = [int(c) for c in handle.read().split()]
                out += found
                todo += found
    return out
