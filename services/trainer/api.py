"""`POST /train`, `GET /train/{job}`, `GET /train/{job}/artifacts/{name}`: training jobs over HTTP.

The request is checked before anything is queued (paths under the data root, runs with their inputs —
MOTRv2 needs a det_db and ground truth, D-FINE an input video and ground truth —, grid keys and values);
then the job record is written `pending` and one task is sent per job: `tracker.train` for model `motrv2`
(a grid is a parent record listing one child job per combination, so workers share the grid),
`detector.train` for model `dfine`.
"""

from __future__ import annotations

import re
from pathlib import Path

from celery import Celery
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.responses import FileResponse

from services.detector.dfine.identify import resolve
from shared.api.deps import IdPath, confine, get_celery_dep, get_settings_dep, get_store
from shared.api.docs import ARTIFACT_TYPES, binary
from shared.errors import InputError, NotFoundError
from shared.run_store import RunStore
from shared.schemas import DFineTrainRequest, JobRecord, StageState, TrainRequest
from shared.settings import Settings

from .grid import combination_name, combinations
from .jobs import mark_failed, new_job_id, read_job, record_task, write_job

router = APIRouter(tags=["trainer"])
_JOB_ID = re.compile(r"^[0-9a-f]{16}$")
_ARTIFACT = re.compile(r"^(plots/)?[A-Za-z0-9_.-]+$")


def _jobs(settings: Settings) -> Path:
    return settings.data_root.resolve() / "jobs"


def _existing(settings: Settings, user_path: str, what: str) -> str:
    path = confine(settings, user_path)
    if not path.exists():
        raise InputError(f"{what} {user_path!r} not found under the data root", field=what)
    return str(path)


def _check_runs(store: RunStore, runs: list[str], det_db: bool = True) -> None:
    for run_id in runs:
        folder = store.run_dir(run_id)
        record = store.get(run_id)  # 404 for an unknown run
        if det_db and not (folder / "det_db.json").is_file():
            raise InputError(f"run {run_id} has no det_db yet", field="runs")
        if not det_db and not record.inputs.get("frames"):
            raise InputError(f"run {run_id} has no input video", field="runs")
        if store.gt_file(run_id) is None:
            raise InputError(f"run {run_id} has no ground truth", field="runs")


def _queue(celery: Celery, folder: Path, job_id: str, request: dict, task: str = "tracker.train") -> None:
    record_task(folder, task, [job_id, request])
    try:
        celery.send_task(task, args=[job_id, request])
    except Exception as exc:
        mark_failed(folder, f"could not queue the task: {type(exc).__name__}: {exc}")
        raise HTTPException(503, f"task broker unreachable; job {job_id} is marked failed") from None


@router.post("/train", status_code=202)
def start_training(
    req: TrainRequest | DFineTrainRequest,
    store: RunStore = Depends(get_store),
    celery: Celery = Depends(get_celery_dep),
    settings: Settings = Depends(get_settings_dep),
):
    req.weights = _existing(settings, req.weights, "weights")
    if isinstance(req, DFineTrainRequest):
        return _start_dfine(req, store, celery, settings)
    if req.data:
        req.data, req.det_db = _existing(settings, req.data, "data"), _existing(settings, req.det_db, "det_db")
    if req.runs:
        _check_runs(store, req.runs)
    try:
        combos = combinations(req.options(), req.grid) if req.grid else []
    except InputError as exc:  # a bad grid key or value is a bad option: 422 like every other option
        raise HTTPException(422, str(exc)) from None
    job_id = new_job_id()
    folder = _jobs(settings) / job_id
    base = req.model_dump(mode="json", exclude={"grid"})
    parent = JobRecord(
        job=job_id,
        options=base,
        data={"runs": req.runs, "root": req.data, "det_db": req.det_db},
        planned_epochs=req.epochs,
    )
    if not combos:
        write_job(folder, parent)
        _queue(celery, folder, job_id, base)
        return {"job": job_id, "status_url": f"/train/{job_id}"}
    parent.grid = []
    children = []
    for index, (changed, _) in enumerate(combos):
        child_id = new_job_id()
        child = {**base, **changed}
        write_job(_jobs(settings) / child_id, JobRecord(job=child_id, options=child, planned_epochs=child["epochs"]))
        parent.grid.append({"job": child_id, "name": combination_name(index, changed), **changed})
        children.append((child_id, child))
    parent.state = StageState.running
    write_job(folder, parent)
    for child_id, child in children:
        _queue(celery, _jobs(settings) / child_id, child_id, child)
    return {"job": job_id, "status_url": f"/train/{job_id}"}


def _start_dfine(req: DFineTrainRequest, store: RunStore, celery: Celery, settings: Settings) -> dict:
    _check_runs(store, req.runs, det_db=False)
    try:  # what the checkpoint is, from its header (the API has no torch); a contradiction is the caller's
        req.size, req.dataset, _ = resolve(req.weights, req.size, req.dataset)
    except InputError as exc:
        raise HTTPException(422, str(exc)) from None
    job_id = new_job_id()
    folder = _jobs(settings) / job_id
    body = req.model_dump(mode="json")
    write_job(
        folder,
        JobRecord(
            job=job_id,
            model="dfine",
            options=body,
            data={"runs": req.runs},
            planned_epochs=req.epochs,
            planned_steps=req.max_steps,
        ),
    )
    _queue(celery, folder, job_id, body, "detector.train")
    return {"job": job_id, "status_url": f"/train/{job_id}"}


def _read(settings: Settings, job_id: str) -> JobRecord:
    if not _JOB_ID.match(job_id) or not (_jobs(settings) / job_id / "job.json").is_file():
        raise NotFoundError(f"no training job {job_id!r}")
    return read_job(_jobs(settings) / job_id)


@router.get("/train/{job_id}", response_model=JobRecord)
def get_job(job_id: IdPath, settings: Settings = Depends(get_settings_dep)):
    record = _read(settings, job_id)
    if record.grid is None:
        return record
    from .grid import grid_row

    rows, states = [], []
    for row in record.grid:
        child = _read(settings, row["job"])
        changed = {k: v for k, v in row.items() if k not in ("job", "name")}
        rows.append({**grid_row(row["job"], changed, child), "name": row["name"]})
        states.append(child.state)
    record.grid = rows
    if all(s in (StageState.succeeded, StageState.failed) for s in states):
        record.state = StageState.failed if StageState.failed in states else StageState.succeeded
    record.progress.done, record.progress.total = sum(s != StageState.pending for s in states), len(states)
    return record


@router.get("/train/{job_id}/artifacts/{name:path}", response_class=Response, responses=binary(*ARTIFACT_TYPES))
def get_job_artifact(job_id: IdPath, name: str, settings: Settings = Depends(get_settings_dep)):
    _read(settings, job_id)
    path = _jobs(settings) / job_id / name
    if not _ARTIFACT.match(name) or name == "job.json" or not path.is_file():
        raise NotFoundError(f"job {job_id} has no artifact {name!r}")
    return FileResponse(path, filename=Path(name).name)
