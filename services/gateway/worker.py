"""Start a Celery worker with every task registered (`motpipe worker`)."""

from __future__ import annotations

import services.detector.tasks  # noqa: F401 - registers detector.detect
import services.evaluator.tasks  # noqa: F401 - registers evaluator.evaluate
import services.tracker.tasks  # noqa: F401 - registers tracker.track
import services.trainer.tasks  # noqa: F401 - registers tracker.train
from shared.celery_app import app


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
    app.worker_main(argv)
