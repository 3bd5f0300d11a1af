"""Celery task `detector.detect` (queue gpu): a thin adapter over the engine."""

from __future__ import annotations

from functools import lru_cache

from shared.celery_app import app
from shared.frames import open_frames
from shared.run_store import ProgressReporter, RunStore
from shared.schemas import DetectOptions
from shared.settings import get_settings, pick_device
from shared.tasks import run_stage

from .engine import run_detection, write_detections
from .registry import build_detector, with_model_identity


@lru_cache(maxsize=2)
def _detector(options_json: str, device: str):
    """Models are loaded once per worker process and reused across tasks."""
    options = DetectOptions.model_validate_json(options_json)
    return build_detector(options, device)


@app.task(name="detector.detect", bind=True)
def detect(self, run_id: str, input_path: str, options: dict) -> dict:
    settings = get_settings()
    store = RunStore(settings.data_root, settings.database_url)
    opts = DetectOptions.model_validate(options)

    def body() -> list[str]:
        nonlocal opts
        opts = with_model_identity(opts)  # a D-FINE checkpoint's size and dataset (a bad file fails the stage)
        source = open_frames(input_path)
        store.start_stage(run_id, "detect", opts.model_dump(mode="json"), total=source.count)
        model_key = opts.model_dump_json(include={"detector", "weights", "size", "dataset", "batch_size"})
        detector = _detector(model_key, pick_device(settings.device))
        result = run_detection(source, detector, opts, ProgressReporter(store, run_id, "detect", source.count))
        folder = store.run_dir(run_id)
        write_detections(result, folder / "det_db.json", "detdb")
        store.update(run_id, lambda r: r.stages["detect"].params.update(det_db=result.info.model_dump(mode="json")))
        return ["det_db.json"] + (["det_db.classes.json"] if result.class_map is not None else [])

    return run_stage(store, run_id, "detect", body, settings.heartbeat_s, settings.stage_retries)
