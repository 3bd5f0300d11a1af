"""`POST /train`, `GET /train/{job}`, `GET /train/{job}/artifacts/{name}`: training jobs over HTTP.

The request is checked before anything is queued (paths under the data root, runs with their inputs —
MOTRv2 needs a det_db and ground truth, D-FINE an input video and ground truth —, grid keys and values);
then the job record is written `pending` and one task is sent per job: `tracker.train` for model `motrv2`
(a grid is a parent record listing one child job per combination, so workers share the grid),
`detector.train` for model `dfine`.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from pathlib import Path
from typing import Literal

from celery import Celery
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from services.detector.dfine.identify import resolve
from shared.api.deps import IdPath, confine, get_celery_dep, get_settings_dep, get_store
from shared.api.docs import ARTIFACT_TYPES, binary
from shared.api.runs import Cursor, Limit, ListedSummary, Text, Word, paged, summary_of
from shared.errors import ConflictError, InputError, NotFoundError
from shared.run_index import PageQuery
from shared.run_store import RunStore
from shared.schemas import MAX_NAME_CHARS, DFineTrainRequest, JobRecord, RunPatch, StageState, TrainRequest
from shared.settings import Settings

from .grid import combination_name, combinations
from .jobs import mark_failed, new_job_id, read_job, record_task, update_job, write_job

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


def _job_name(model: str, weights: str, runs: list[str], data: str | None) -> str:
    """A default job name: the model, the checkpoint it starts from and what it trains on."""
    on = f"{len(runs)} run{'s' if len(runs) != 1 else ''}" if runs else Path(data or "?").name
    return f"{model} from {Path(weights).name} on {on}"[:MAX_NAME_CHARS]


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
        name=_job_name("motrv2", req.weights, req.runs, req.data),
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
        name = f"{parent.name} · {combination_name(index, changed)}"
        write_job(_jobs(settings) / child_id, JobRecord(job=child_id, options=child, planned_epochs=child["epochs"],
                                                        name=name))  # fmt: skip
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
            name=_job_name("dfine", req.weights, req.runs, None),
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


class JobSummary(ListedSummary):
    job: str
    model: str
    strategy: str | None
    state: str
    epochs: dict[str, int]


class JobPage(BaseModel):
    jobs: list[JobSummary]
    next: str | None
    total: int


@router.get("/train", response_model=JobPage)
def list_jobs(
    store: RunStore = Depends(get_store),
    settings: Settings = Depends(get_settings_dep),
    limit: Limit = 50,
    cursor: Cursor = None,
    q: Text = None,
    tag: Word = None,
    state: Literal["pending", "running", "succeeded", "failed"] | None = None,
    model: Literal["motrv2", "dfine"] | None = None,
    sort: Literal["-created", "created", "name"] = "-created",
):
    """A page of training jobs from the run index, newest first. A job the index holds as running is read
    from its `job.json` (a training process that died reads as failed, as `GET /train/{job}` says)."""
    filters = tuple((k, v) for k, v in (("tag", tag), ("state", state), ("model", model)) if v is not None)
    found = paged(store.index.jobs, PageQuery(limit=limit, cursor=cursor, sort=sort, q=q, filters=filters))
    jobs = []
    for row in found["rows"]:
        job_state = row.state
        epochs = {"finished": row.finished_epochs, "planned": row.planned_epochs}
        if job_state == "running":
            with contextlib.suppress(InputError):
                job_state = read_job(_jobs(settings) / row.job).state.value
        elif job_state == "succeeded" and row.finished_epochs < row.planned_epochs:
            # ended by max_steps inside an epoch: "0/2" alone would read as a job that did nothing
            with contextlib.suppress(InputError):
                if max_steps := read_job(_jobs(settings) / row.job).options.get("max_steps"):
                    epochs["max_steps"] = int(max_steps)
        jobs.append({**summary_of(row, "job", ("model", "strategy")), "state": job_state, "epochs": epochs})
    return {"jobs": jobs, "next": found["next"], "total": found["total"]}


@router.patch("/train/{job_id}", response_model=JobRecord)
def patch_job(job_id: IdPath, change: RunPatch, settings: Settings = Depends(get_settings_dep)):
    """Name, tags and note of a training job (fields left out stay as they are)."""
    _read(settings, job_id)  # 404 for an unknown job

    def apply(record: JobRecord) -> None:
        for field, value in change.model_dump(exclude_none=True).items():
            setattr(record, field, value)

    return update_job(_jobs(settings) / job_id, apply)


@router.delete("/train/{job_id}", status_code=204, response_class=Response)
def delete_job(job_id: IdPath, store: RunStore = Depends(get_store), settings: Settings = Depends(get_settings_dep)):
    """Remove a job's folder (checkpoints included) and a grid's child jobs; 409 while one runs or is queued."""
    record = _read(settings, job_id)
    jobs = [job_id] + [row["job"] for row in record.grid or [] if _JOB_ID.match(str(row.get("job")))]
    for one in jobs:
        if not (_jobs(settings) / one / "job.json").is_file():
            continue
        child = read_job(_jobs(settings) / one)
        if child.state == StageState.running or (child.state == StageState.pending and child.task):
            raise ConflictError(f"training job {one} is {child.state.value}: delete it when it ends")
    for one in jobs:
        shutil.rmtree(_jobs(settings) / one, ignore_errors=True)
        store.index.drop("job", one)
    return Response(status_code=204)
