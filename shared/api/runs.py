"""Run routes every service serves: list runs, one run's state, its artifacts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from shared.errors import ConflictError, GoneError, NotFoundError
from shared.run_store import RunStore, shown
from shared.schemas import RunPatch, RunRecord
from shared.settings import Settings

from .deps import RunIdPath, get_settings_dep, get_store
from .docs import ARTIFACT_TYPES, binary
from .files import open_file_response

router = APIRouter(tags=["runs"])


def lost_after(settings: Settings) -> float:
    """A running stage without a heartbeat for this long reads as failed (the reaper normally acts after
    `stage_stale_s`; this covers the case where nothing can: no live worker, or an unwritable data root)."""
    return 5 * settings.stage_stale_s


@router.get("/runs", response_model=list[RunRecord])
def list_runs(response: Response, store: RunStore = Depends(get_store), settings: Settings = Depends(get_settings_dep)):
    """Every readable run, newest first; unreadable records are named in `X-Motpipe-Skipped-Runs`."""
    skipped: list[str] = []
    runs = [shown(r, lost_after(settings), store.root) for r in store.list(skipped)]
    if skipped:
        response.headers["X-Motpipe-Skipped-Runs"] = ",".join(sorted(skipped))
    return runs


@router.get("/runs/{run_id}", response_model=RunRecord)
def get_run(run_id: RunIdPath, store: RunStore = Depends(get_store), settings: Settings = Depends(get_settings_dep)):
    return shown(store.get(run_id), lost_after(settings), store.root)


@router.get("/runs/{run_id}/artifacts/{name:path}", response_class=Response, responses=binary(*ARTIFACT_TYPES))
def get_artifact(run_id: RunIdPath, name: str, store: RunStore = Depends(get_store)):
    record = store.get(run_id)
    if name not in record.artifacts:
        raise NotFoundError(f"run {run_id} has no artifact {name!r}")
    try:
        return open_file_response(store.artifact_path(run_id, name))
    except FileNotFoundError:
        store.output_missing(run_id, name)
        raise GoneError(f"run {run_id}: artifact {name!r} is no longer on disk; the run's record now says so") from None


@router.patch("/runs/{run_id}", response_model=RunRecord)
def patch_run(
    run_id: RunIdPath, change: RunPatch, store: RunStore = Depends(get_store), settings=Depends(get_settings_dep)
):
    """Name, tags and note of a run (fields left out stay as they are)."""

    def apply(record: RunRecord) -> None:
        for field, value in change.model_dump(exclude_none=True).items():
            setattr(record, field, value)

    return shown(store.update(run_id, apply), lost_after(settings), store.root)


@router.delete("/runs/{run_id}", status_code=204, response_class=Response)
def delete_run(run_id: RunIdPath, store: RunStore = Depends(get_store)):
    """Remove a run and its folder (409 while one of its stages runs or is queued); its children keep
    working: they are given the ground truth they read from it."""
    busy = store.busy_stage(run_id)
    if busy is not None:
        raise ConflictError(f"run {run_id}: its {busy} stage is running or queued; delete it when that ends")
    store.delete(run_id)
    return Response(status_code=204)
