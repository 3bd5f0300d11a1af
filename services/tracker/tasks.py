"""Celery task `tracker.track` (queue gpu): a thin adapter over the engine."""

from __future__ import annotations

from shared.celery_app import app
from shared.formats.det_db import read_det_db
from shared.formats.mot_txt import write_mot
from shared.run_store import ProgressReporter, RunStore
from shared.schemas import TrackOptions
from shared.settings import get_settings
from shared.tasks import run_stage

from .engine import run_tracking


@app.task(name="tracker.track", bind=True)
def track(self, run_id: str, options: dict, sequence: str | None = None, num_frames: int | None = None) -> dict:
    store = RunStore(get_settings().data_root)
    opts = TrackOptions.model_validate(options)

    def body() -> list[str]:
        folder = store.run_dir(run_id)
        store.start_stage(run_id, "track", opts.model_dump(mode="json"), total=num_frames)
        det_db = read_det_db(folder / "det_db.json")
        progress = ProgressReporter(store, run_id, "track", num_frames)
        tracks = run_tracking(det_db, opts, sequence, num_frames, progress, source="det_db.json")
        write_mot(folder / "tracks.txt", tracks)
        store.update(run_id, lambda r: store.forget_derived(r, folder))  # metrics of the old tracks are stale
        return ["tracks.txt"]

    return run_stage(store, run_id, "track", body)
