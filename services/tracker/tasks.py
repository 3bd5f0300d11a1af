"""Celery task `tracker.track` (queue gpu): a thin adapter over the engine."""

from __future__ import annotations

import contextlib
from functools import lru_cache

from shared.celery_app import app
from shared.formats.det_db import read_det_db, read_det_db_classes
from shared.formats.mot_txt import write_mot
from shared.frames import open_frames
from shared.run_store import ProgressReporter, RunStore
from shared.schemas import TrackOptions
from shared.settings import get_settings, pick_device
from shared.tasks import BrokerUnavailable, enqueue, run_stage

from .engine import build_tracker, run_tracking, threshold_notes


@lru_cache(maxsize=2)
def _model(weights: str, device: str):
    """Models are loaded once per worker process and reused across tasks."""
    from .motrv2.tracker import load_tracker_model

    return load_tracker_model(weights, device)


@app.task(name="tracker.track", bind=True)
def track(
    self, run_id: str, options: dict, sequence: str | None = None, num_frames: int | None = None, evaluate=False
) -> dict:
    """Track a run's det_db; `evaluate`: queue the run's evaluation once its tracks are written (sweeps). The
    evaluation is a stage of its own (recorded, so the reaper queues it again if the broker loses it)."""
    settings = get_settings()
    store = RunStore(settings.data_root, settings.database_url)
    opts = TrackOptions.model_validate(options)

    def body() -> list[str]:
        folder = store.run_dir(run_id)
        store.start_stage(run_id, "track", opts.model_dump(mode="json"), total=num_frames)
        det_db = read_det_db(folder / "det_db.json")
        classes = read_det_db_classes(folder / "det_db.json", det_db)
        device = pick_device(settings.device)
        frames = None
        model = None
        if opts.tracker == "motrv2":
            frames = open_frames(store.get(run_id).inputs["frames"])
            model = _model(opts.weights, device)
        tracker = build_tracker(opts, device, model)
        progress = ProgressReporter(store, run_id, "track", num_frames)
        tracks = run_tracking(det_db, opts, sequence, num_frames, progress, "det_db.json", frames, tracker, classes)
        write_mot(folder / "tracks.txt", tracks)
        notes = threshold_notes(det_db, opts, tracks, tracker)
        store.update(run_id, lambda r: r.stages["track"].notes.extend(notes))
        store.update(run_id, lambda r: store.forget_derived(r, folder))  # metrics of the old tracks are stale
        return ["tracks.txt"]

    result = run_stage(store, run_id, "track", body, settings.heartbeat_s, settings.stage_retries)
    if evaluate and result["state"] == "succeeded":
        with contextlib.suppress(BrokerUnavailable):  # the eval stage is marked failed with the reason
            enqueue(store, app, run_id, "eval", "evaluator.evaluate", [run_id, 0.5], {"iou": 0.5})
    return result
