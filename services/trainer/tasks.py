"""Celery tasks `tracker.train` (MOTRv2) and `detector.train` (D-FINE), queue gpu: one training job each,
recorded in `<data root>/jobs/<job>/job.json`.

Training runs for hours, so the task has no time limit of its own (the job record shows progress; a worker
that dies leaves the job `failed` once its process is gone, and `POST /train` can start it again).
"""

from __future__ import annotations

from pathlib import Path

from shared.celery_app import app
from shared.run_store import RunStore
from shared.schemas import DFineTrainRequest, TrainRequest
from shared.settings import get_settings, pick_device

from .dfine_job import DFineData, run_dfine_job
from .jobs import mark_failed
from .motrv2_job import DataSpec, run_motrv2_job


def job_folder(job_id: str) -> Path:
    return get_settings().data_root.resolve() / "jobs" / job_id


@app.task(name="tracker.train", bind=True, time_limit=None, soft_time_limit=None, acks_late=False)
def train(self, job_id: str, request: dict) -> dict:
    settings = get_settings()
    folder = job_folder(job_id)
    req = TrainRequest.model_validate(request)
    data = DataSpec(
        weights=Path(req.weights),
        root=Path(req.data) if req.data else None,
        det_db=Path(req.det_db) if req.det_db else None,
        runs=req.runs,
        store=RunStore(settings.data_root, settings.database_url),
    )
    try:
        record = run_motrv2_job(folder, req.options(), data, pick_device(settings.device), job_id=job_id)
    except Exception as exc:  # the record already says failed with the reason; the task result says it too
        record = mark_failed(folder, str(exc))
    return {"job": job_id, "state": record.state.value, "error": record.error}


@app.task(name="detector.train", bind=True, time_limit=None, soft_time_limit=None, acks_late=False)
def train_dfine(self, job_id: str, request: dict) -> dict:
    settings = get_settings()
    folder = job_folder(job_id)
    req = DFineTrainRequest.model_validate(request)
    data = DFineData(
        weights=Path(req.weights), runs=req.runs, store=RunStore(settings.data_root, settings.database_url)
    )
    try:
        record = run_dfine_job(folder, req.options(), data, pick_device(settings.device), job_id=job_id)
    except Exception as exc:  # the record already says failed with the reason; the task result says it too
        record = mark_failed(folder, str(exc))
    return {"job": job_id, "state": record.state.value, "error": record.error}
