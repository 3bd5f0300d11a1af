"""What every task does around its core: stage states in the run store, errors as reasons."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from shared.errors import InputError
from shared.run_store import RunStore
from shared.schemas import StageState, TaskResult

log = logging.getLogger("motpipe.tasks")


def run_stage(store: RunStore, run_id: str, stage: str, body: Callable[[], list[str]]) -> dict:
    """Run `body` (which writes artifacts and returns their names) as `stage` of `run_id`.

    The stage ends `succeeded` only after the artifacts exist; any error leaves it `failed`
    with a one-line reason (bad input) or the exception (a bug), never a partial success.
    """
    try:
        artifacts = body()
        store.succeed_stage(run_id, stage, artifacts)
        return TaskResult(run=run_id, stage=stage, state=StageState.succeeded).model_dump()
    except InputError as exc:
        reason = str(exc)
    except Exception as exc:  # a failed stage must say why, whatever broke
        log.error("stage %s of run %s crashed:\n%s", stage, run_id, traceback.format_exc())
        reason = f"internal error: {type(exc).__name__}: {exc}"
    store.fail_stage(run_id, stage, reason)
    return TaskResult(run=run_id, stage=stage, state=StageState.failed, error=reason).model_dump()
