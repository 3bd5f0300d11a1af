"""Celery task `evaluator.evaluate` (queue cpu): metrics and plots of a run into its folder."""

from __future__ import annotations

from shared.atomic import atomic_write_text
from shared.celery_app import app
from shared.errors import InputError
from shared.run_store import ProgressReporter, RunStore
from shared.schemas import StageState
from shared.settings import get_settings
from shared.tasks import run_stage

from .store import doctor_run, evaluate_run, metrics_name


@app.task(name="evaluator.evaluate", bind=True)
def evaluate(self, run_id: str, iou: float = 0.5) -> dict:
    settings = get_settings()
    store = RunStore(settings.data_root, settings.database_url)

    def body() -> list[str]:
        store.start_stage(run_id, "eval", {"iou": iou})
        evaluate_run(store, run_id, iou)
        return [metrics_name(iou)]

    record = store.get(run_id)
    done = record.stages.get("eval")
    if done is not None and done.state == StageState.succeeded and metrics_name(iou) not in record.artifacts:
        # the stage succeeded for another threshold (or through GET /eval): this one is new work, not a
        # duplicate delivery of the task that finished it
        store.update(run_id, lambda r: setattr(r.stages["eval"], "state", StageState.pending))
    return run_stage(store, run_id, "eval", body, settings.heartbeat_s, settings.stage_retries)


@app.task(name="evaluator.doctor", bind=True)
def doctor(self, run_id: str) -> dict:
    """Dataset checks of a run; findings also land in the run's `doctor.json`."""
    store = RunStore(get_settings().data_root, get_settings().database_url)
    report = doctor_run(store, run_id)
    folder = store.run_dir(run_id)
    atomic_write_text(folder / "doctor.json", report.model_dump_json(indent=1))
    store.update(run_id, lambda r: store.record_artifacts(r, folder, ["doctor.json"]))
    return report.model_dump(mode="json")


@app.task(name="evaluator.label", bind=True)
def label(self, run_id: str, action: str, params: dict) -> dict:
    """`push` picked frames to Label Studio or `pull` its annotations (the run's `label` stage); what was done
    lands in the stage's params under `outcome`. Label Studio's failures fail the stage in one line."""
    from .label_loop import pull, push
    from .label_studio import LabelStudio, LabelStudioError
    from .store import run_picks

    settings = get_settings()
    store = RunStore(settings.data_root, settings.database_url)

    def body() -> list[str]:
        store.start_stage(run_id, "label", {"action": action, **params})
        try:
            studio = LabelStudio(settings.label_studio_url, settings.label_studio_token)
            try:
                if action == "pull":
                    outcome = pull(store, run_id, studio, params["project"])
                else:
                    picks = run_picks(store, run_id, params["pick"], params["frames"], params["min_gap"])
                    decoded = ProgressReporter(store, run_id, "label", None)  # frames decoded for the images
                    outcome = push(store, run_id, studio, picks, params.get("project"), decoded)
                    outcome["picks"] = [{"frame": p.frame, "reason": p.reason} for p in picks]
            finally:
                studio.close()
        except LabelStudioError as exc:
            raise InputError(str(exc)) from None
        store.update(run_id, lambda r: r.stages["label"].params.update(outcome=outcome))
        return []

    return run_stage(store, run_id, "label", body, settings.heartbeat_s, settings.stage_retries)
