"""Run routes every service serves: list runs, one run's state, its artifacts."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from shared.errors import NotFoundError
from shared.run_store import RunStore
from shared.schemas import RunRecord

from .deps import get_store

router = APIRouter(tags=["runs"])


@router.get("/runs", response_model=list[RunRecord])
def list_runs(store: RunStore = Depends(get_store)):
    return store.list()


@router.get("/runs/{run_id}", response_model=RunRecord)
def get_run(run_id: str, store: RunStore = Depends(get_store)):
    return store.get(run_id)


@router.get("/runs/{run_id}/artifacts/{name:path}")
def get_artifact(run_id: str, name: str, store: RunStore = Depends(get_store)):
    record = store.get(run_id)
    if name not in record.artifacts:
        raise NotFoundError(f"run {run_id} has no artifact {name!r}")
    return FileResponse(store.artifact_path(run_id, name))
