"""Celery task `evaluator.evaluate` (queue cpu): metrics and plots of a run into its folder."""

from __future__ import annotations

from shared.celery_app import app
from shared.run_store import RunStore
from shared.settings import get_settings
from shared.tasks import run_stage

from .store import evaluate_run, metrics_name


@app.task(name="evaluator.evaluate", bind=True)
def evaluate(self, run_id: str, iou: float = 0.5) -> dict:
    store = RunStore(get_settings().data_root)

    def body() -> list[str]:
        store.start_stage(run_id, "eval", {"iou": iou})
        evaluate_run(store, run_id, iou)
        return [metrics_name(iou)]

    return run_stage(store, run_id, "eval", body)
