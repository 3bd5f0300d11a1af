"""Start a Celery worker with every task registered (`motpipe worker`)."""

from __future__ import annotations

from celery.signals import worker_ready

import services.detector.tasks  # noqa: F401 - registers detector.detect
import services.evaluator.tasks  # noqa: F401 - registers evaluator.evaluate
import services.tracker.tasks  # noqa: F401 - registers tracker.track
import services.trainer.tasks  # noqa: F401 - registers tracker.train and detector.train
from services.trainer.jobs import reap_jobs
from shared.celery_app import app, broker_folders
from shared.run_store import RunStore
from shared.settings import get_settings
from shared.tasks import start_reaper


@worker_ready.connect
def _start_reaper(**_) -> None:
    """Every worker looks for stages whose worker died (no heartbeat) and queues them again."""
    settings = get_settings()
    every = max(1.0, min(15.0, settings.stage_stale_s / 4))
    jobs = settings.data_root.resolve() / "jobs"
    also = lambda: reap_jobs(jobs, app, settings.stage_stale_s)  # noqa: E731
    store = RunStore(settings.data_root, settings.database_url)
    store.index  # noqa: B018 - migrated at start-up, before any task writes a record
    start_reaper(store, app, settings.stage_stale_s, settings.stage_retries, every, also)


def run_worker(
    queues: str = "gpu,cpu", concurrency: int = 1, loglevel: str = "INFO", hostname: str | None = None
) -> None:
    argv = [
        "worker",
        f"--queues={queues}",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        "--pool=prefork",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    for folder in broker_folders(get_settings()):  # the file broker's, before the worker reads them
        folder.mkdir(parents=True, exist_ok=True)
    app.worker_main(argv)
