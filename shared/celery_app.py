"""The one Celery app. Task modules register on it; APIs send tasks by name only.

Without `MOTPIPE_BROKER_URL`, broker and results are plain files under the data root
(kombu's filesystem transport), so `motpipe serve` needs no server. With Redis, an
unacknowledged task whose worker died is handed out again after the visibility timeout.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from shared.settings import Settings, get_settings

TASK_QUEUES = {
    "detector.detect": "gpu",
    "tracker.track": "gpu",
    "evaluator.evaluate": "cpu",
    "evaluator.doctor": "cpu",
    "evaluator.label": "cpu",
    "tracker.train": "gpu",
    "detector.train": "gpu",
}


def broker_folders(settings: Settings) -> list[Path]:
    """The folders the file broker (no `broker_url`) reads and writes; none with a broker server."""
    if settings.broker_url:
        return []
    root = settings.data_root.resolve()
    # control: kombu's default is ./control in the working directory
    return [root / "broker" / "queue", root / "broker" / "processed", root / "broker" / "control", root / "results"]


def make_celery(settings: Settings, create_folders: bool = True) -> Celery:
    """`create_folders=False` for the import-time app: importing a task module (`motpipe --help` does) must
    not create a data root in the working directory; the worker creates them when it starts."""
    transport_options: dict = {"visibility_timeout": settings.visibility_timeout_s}
    broker = settings.broker_url
    backend = settings.result_backend
    if not broker:
        queue_dir, processed, control, results = broker_folders(settings)
        for folder in (queue_dir, processed, control, results) if create_folders else ():
            folder.mkdir(parents=True, exist_ok=True)
        broker = "filesystem://"
        transport_options |= {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "processed_folder": str(processed),
            "control_folder": str(control),
            "store_processed": False,
        }
        backend = backend or f"file://{results}"
    app = Celery("motpipe", broker=broker, backend=backend or broker)
    app.conf.update(
        task_routes={name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        task_default_queue="cpu",
        task_acks_late=True,  # a task is acknowledged only after it finished ...
        task_reject_on_worker_lost=True,  # ... and re-queued when its worker process dies
        worker_prefetch_multiplier=1,  # one GPU task at a time per process
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=max(1, settings.task_time_limit_s - 30),
        broker_transport_options=transport_options,
        result_backend_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_expires=24 * 3600,
        worker_hijack_root_logger=False,
    )
    return app


app = make_celery(get_settings(), create_folders=False)
