"""Training job records: `<job folder>/job.json`, written atomically under a lock.

Honest state: a job is `succeeded` only after its last planned epoch (or step) finished and the checkpoint is
on disk. A record that says `running` while the process that wrote it is gone (same host, pid no longer
alive) is read as `failed` with that reason, so a SIGKILLed or OOM-killed training never looks alive or
finished; `--resume` continues it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from shared.atomic import atomic_write_text
from shared.errors import InputError
from shared.schemas import JobRecord, StageState, utcnow

JOB_FILE = "job.json"


def new_job_id() -> str:
    return secrets.token_hex(8)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_job(folder: Path) -> JobRecord:
    path = Path(folder) / JOB_FILE
    try:
        record = JobRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no training job here", source=str(path)) from None
    except ValueError as exc:
        raise InputError(f"unreadable job record: {exc}", source=str(path)) from None
    worker = record.worker
    if (
        record.state == StageState.running
        and worker.get("host") == socket.gethostname()
        and isinstance(worker.get("pid"), int)
        and not _alive(worker["pid"])
    ):
        record.state = StageState.failed
        record.error = (
            f"the training process (pid {worker['pid']}) ended without finishing after "
            f"{record.finished_epochs} of {record.planned_epochs} epochs; --resume continues from the last checkpoint"
        )
    return record


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".job.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_job(folder: Path, record: JobRecord) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        atomic_write_text(folder / JOB_FILE, record.model_dump_json(indent=1))


def update_job(folder: Path, change: Callable[[JobRecord], None]) -> JobRecord:
    with _locked(folder):
        record = JobRecord.model_validate_json((folder / JOB_FILE).read_text(encoding="utf-8"))
        change(record)
        atomic_write_text(folder / JOB_FILE, record.model_dump_json(indent=1))
        return record


def mark_running(record: JobRecord) -> None:
    record.state = StageState.running
    record.error = None
    record.started = record.started or utcnow()
    record.finished = None
    record.attempts += 1
    record.worker = {"host": socket.gethostname(), "pid": os.getpid()}


def mark_failed(folder: Path, reason: str) -> JobRecord:
    def change(record: JobRecord) -> None:
        record.state = StageState.failed
        record.error = reason
        record.finished = utcnow()

    return update_job(folder, change)
