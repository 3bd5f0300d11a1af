"""`POST /track`: queue tracking of a run whose detect stage succeeded."""

from __future__ import annotations

from pathlib import Path

from celery import Celery
from fastapi import APIRouter, Depends, HTTPException

from shared.api.deps import confine, get_celery_dep, get_settings_dep, get_store
from shared.errors import ConflictError, InputError
from shared.run_store import RunStore
from shared.schemas import StageState, TrackOptions, TrackRequest
from shared.settings import Settings
from shared.tasks import BrokerUnavailable, enqueue

from .engine import check_tracker

router = APIRouter(tags=["tracker"])


@router.post("/track", status_code=202)
def track(
    req: TrackRequest,
    store: RunStore = Depends(get_store),
    celery: Celery = Depends(get_celery_dep),
    settings: Settings = Depends(get_settings_dep),
):
    record = store.get(req.run)
    detect = record.stages.get("detect")
    if detect is None or detect.state != StageState.succeeded:
        state = detect.state if detect else "pending"
        raise ConflictError(f"run {req.run}: detect stage is {state}; track needs a finished det_db")
    options = TrackOptions.model_validate(req.model_dump(exclude={"run"}))
    check_tracker(options)  # unknown tracker or option -> 400 now, not a failed task later
    if options.weights:
        options.weights = str(confine(settings, options.weights, "weights"))
        if not Path(options.weights).is_file():
            raise InputError(f"weights {req.weights!r} not found under the data root", field="weights")
    info = detect.params.get("det_db", {})
    params = options.model_dump(mode="json")
    args = [req.run, params, info.get("sequence"), info.get("frames")]
    folder = store.run_dir(req.run)
    store.update(req.run, lambda r: store.forget_derived(r, folder))  # old metrics must not outlive a re-track
    try:
        enqueue(store, celery, req.run, "track", "tracker.track", args, params)
    except BrokerUnavailable as exc:
        raise HTTPException(503, {"message": str(exc), "run": req.run, "status_url": f"/runs/{req.run}"}) from None
    return {"run": req.run, "status_url": f"/runs/{req.run}"}
