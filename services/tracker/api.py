"""`POST /track`: queue tracking of a run whose detect stage succeeded. A run's tracks never change once
written: tracking a run that has tracks (or is tracking) makes a child run that reads its det_db and ground
truth, and tracks that instead."""

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
    run_id, answer = req.run, {}
    track = record.stages.get("track")
    busy = track is not None and (track.state in (StageState.running, StageState.succeeded) or
                                  (track.state == StageState.pending and track.task))  # fmt: skip
    if busy:  # its tracks (done or coming) stay as they are: a child run tracks again
        run_id = store.create_tracking_child(req.run, describe(options)).run
        answer = {"parent": req.run}
    else:  # no tracks yet (or a failed attempt): metrics of an earlier attempt must not outlive it
        store.update(run_id, lambda r: store.forget_derived(r, store.run_dir(run_id)))
    args = [run_id, params, info.get("sequence"), info.get("frames")]
    try:
        enqueue(store, celery, run_id, "track", "tracker.track", args, params)
    except BrokerUnavailable as exc:
        raise HTTPException(503, {"message": str(exc), "run": run_id, "status_url": f"/runs/{run_id}"}) from None
    return {"run": run_id, **answer, "status_url": f"/runs/{run_id}"}


def describe(options: TrackOptions) -> str:
    """What a child run tracks with, for its name: `bytetrack score_threshold=0.4 lost_track_buffer=15`."""
    given = {"score_threshold": options.score_threshold, **options.options}
    if options.weights:
        given["weights"] = Path(options.weights).name
    return " ".join([options.tracker, *(f"{k}={v}" for k, v in given.items() if v is not None)])
