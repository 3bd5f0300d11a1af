"""Training job records: `<job folder>/job.json`, written atomically under a lock.

Honest state: a job is `succeeded` only after its last planned epoch (or step) finished and the checkpoint is
on disk. A record that says `running` while the process that wrote it is gone (same host, pid no longer
alive), or whose heartbeat (written every `HEARTBEAT_S` by a thread of the training process) is older than
`STALE_S` (another host: a lost worker or node), is read as `failed` with that reason, so a SIGKILLed or
OOM-killed training never looks alive or finished; `--resume` continues it.

A job under `<data root>/jobs/` of a data root that has a run index (the services open it at start-up) gets
its index row updated with every write; a job folder elsewhere (`motpipe train --out DIR`) has none.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from shared.atomic import atomic_write_text
from shared.errors import InputError
from shared.periodic import every
from shared.schemas import JobRecord, StageState, utcnow

JOB_FILE = "job.json"
HEARTBEAT_S = 30.0
STALE_S = float(os.environ.get("MOTPIPE_JOB_STALE_S", "300"))


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
    if record.state == StageState.running:
        reason = _why_dead(record.worker)
        if reason:
            record.state = StageState.failed
            record.error = (
                f"{reason} after {record.finished_epochs} of {record.planned_epochs} epochs; "
                "--resume continues from the last checkpoint"
            )
    return record


def _why_dead(worker: dict) -> str | None:
    pid = worker.get("pid")
    if worker.get("host") == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        return f"the training process (pid {pid}) ended without finishing"
    beat = worker.get("heartbeat")
    if beat and (utcnow() - datetime.fromisoformat(beat)).total_seconds() > STALE_S:
        return f"no heartbeat from {worker.get('host')} since {beat} (worker or node lost)"
    return None


def heartbeat(folder: Path, interval: float = HEARTBEAT_S):
    """Refresh `worker.heartbeat` in job.json every `interval` seconds while the block runs."""
    beat = lambda: update_job(folder, lambda r: r.worker.update(heartbeat=utcnow().isoformat()))  # noqa: E731
    return every(interval, beat, "job-heartbeat")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".job.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _index(folder: Path, record: JobRecord) -> None:
    from shared.run_index import job_row
    from shared.run_store import RunStore

    folder = folder.resolve()
    root = folder.parent.parent
    if folder.parent.name == "jobs" and ((root / "index.sqlite").is_file() or os.environ.get("MOTPIPE_DATABASE_URL")):
        RunStore(root).index.put_rows("job", [job_row(record)])


def write_job(folder: Path, record: JobRecord) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        atomic_write_text(folder / JOB_FILE, record.model_dump_json(indent=1))
        _index(folder, record)


def update_job(folder: Path, change: Callable[[JobRecord], None]) -> JobRecord:
    with _locked(folder):
        record = JobRecord.model_validate_json((folder / JOB_FILE).read_text(encoding="utf-8"))
        change(record)
        atomic_write_text(folder / JOB_FILE, record.model_dump_json(indent=1))
        _index(folder, record)
        return record


def record_task(folder: Path, name: str, args: list) -> None:
    """Note the task a pending job waits for, so that a reaper can send it again if the broker loses it."""

    def change(record: JobRecord) -> None:
        record.task, record.queued = {"name": name, "args": args}, utcnow()

    update_job(folder, change)


def reap_jobs(jobs_dir: Path, celery, stale_s: float) -> list[str]:
    """Send again the task of every job still `pending` longer than `stale_s` after it was queued whose message
    the broker no longer holds (Redis restarted without persistence); returns their ids. Jobs that ran and
    died are read as failed by `read_job` and left to `--resume`."""
    from shared.tasks import broker_messages

    cutoff = utcnow().timestamp() - stale_s
    waiting = []
    for folder in sorted(jobs_dir.iterdir()) if jobs_dir.is_dir() else []:
        with contextlib.suppress(InputError, OSError):
            record = read_job(folder)
            if record.state == StageState.pending and record.task and record.queued.timestamp() < cutoff:
                waiting.append((folder, record))
    if not waiting:
        return []
    held = broker_messages(celery)
    if held is None:  # the file broker keeps its messages on disk: nothing is lost with a restart
        return []
    sent = []
    for folder, record in waiting:
        if record.job.encode() not in held:
            record_task(folder, record.task["name"], record.task["args"])
            celery.send_task(record.task["name"], args=record.task["args"])
            sent.append(record.job)
    return sent


def mark_running(record: JobRecord) -> None:
    record.state = StageState.running
    record.error = None
    record.started = record.started or utcnow()
    record.finished = None
    record.attempts += 1
    record.worker = {"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": utcnow().isoformat()}


def mark_failed(folder: Path, reason: str) -> JobRecord:
    def change(record: JobRecord) -> None:
        record.state = StageState.failed
        record.error = reason
        record.finished = utcnow()

    return update_job(folder, change)
