"""What every task does around its core: stage states in the run store, errors as reasons, heartbeats,
and the reaper that notices a stage whose worker is gone.

Life of a stage: the API records the task it queues (`enqueue`: name and arguments in the stage record)
and the stage is `pending`; the worker marks it `running` and refreshes `heartbeat` every `heartbeat_s`
while the body runs; the stage ends `succeeded` only after its artifacts exist, else `failed` with the
reason. A worker killed mid-task stops the heartbeat: any live worker's reaper (`reap`, every few seconds)
queues the recorded task again, up to `stage_retries` times, then fails the stage saying why, so a run
never stays `running` for the broker's visibility timeout (hours). A late duplicate of a task whose stage
already succeeded (Redis redelivering the killed worker's message) does nothing.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from datetime import timedelta

from shared.errors import InputError
from shared.periodic import every
from shared.run_store import RunStore
from shared.schemas import StageState, TaskResult, utcnow

log = logging.getLogger("motpipe.tasks")


class BrokerUnavailable(RuntimeError):
    """The task could not be queued; the stage has been marked failed with the reason."""


def enqueue(
    store: RunStore, celery, run_id: str, stage: str, name: str, args: list, params: dict, retry: bool = False
) -> None:
    """Record the task in the stage (pending), then send it; a broker failure fails the stage and raises.
    `retry`: the reaper queues a lost attempt again (its attempts keep counting); otherwise a new request."""
    store.reset_stage(run_id, stage, params, {"name": name, "args": args}, keep_attempts=retry)
    try:
        celery.send_task(name, args=args)
    except Exception as exc:  # broker down: say so instead of leaving the stage pending forever
        store.fail_stage(run_id, stage, f"could not queue the task: {type(exc).__name__}: {exc}")
        raise BrokerUnavailable(f"task broker unreachable; stage {stage} of run {run_id} is marked failed") from exc


def run_stage(
    store: RunStore,
    run_id: str,
    stage: str,
    body: Callable[[], list[str]],
    heartbeat_s: float = 10.0,
    retries: int | None = None,
) -> dict:
    """Run `body` (which writes artifacts and returns their names) as `stage` of `run_id`.

    The stage ends `succeeded` only after the artifacts exist; any error leaves it `failed`
    with a one-line reason (bad input) or the exception (a bug), never a partial success.
    A delivery after `retries` + 1 attempts whose worker died (the broker hands a task whose process was
    killed, e.g. for memory, out again at once) fails the stage instead of dying once more.
    """
    current = store.get(run_id).stages.get(stage)
    if current is not None and current.state == StageState.succeeded:
        log.info("stage %s of run %s already succeeded: a duplicate delivery, nothing to do", stage, run_id)
        return TaskResult(run=run_id, stage=stage, state=StageState.succeeded).model_dump()
    if retries is not None and current is not None and current.attempts > retries:
        reason = (f"not tried again: its worker died during each of {current.attempts} attempts "
                  "(killed for memory? `motpipe doctor` checks the inputs)")  # fmt: skip
        store.fail_stage_on_full_disk(run_id, stage, reason)
        log.error("stage %s of run %s: %s", stage, run_id, reason)
        return TaskResult(run=run_id, stage=stage, state=StageState.failed, error=reason).model_dump()
    try:
        with every(heartbeat_s, lambda: store.beat(run_id, stage), f"heartbeat-{run_id}-{stage}"):
            artifacts = body()
        store.succeed_stage(run_id, stage, artifacts)
        return TaskResult(run=run_id, stage=stage, state=StageState.succeeded).model_dump()
    except InputError as exc:
        reason = str(exc)
    except Exception as exc:  # a failed stage must say why, whatever broke
        log.error("stage %s of run %s crashed:\n%s", stage, run_id, traceback.format_exc())
        reason = f"internal error: {type(exc).__name__}: {exc}"
    store.fail_stage_on_full_disk(run_id, stage, reason)  # the task result says failed even if the record cannot
    return TaskResult(run=run_id, stage=stage, state=StageState.failed, error=reason).model_dump()


def broker_messages(celery) -> bytes | None:
    """Every message the Redis broker holds (queued, or reserved by a worker and not yet acknowledged) as
    one byte string, to look run ids up in (Celery puts the arguments' repr in each message's headers);
    None when the broker is not Redis (the file broker keeps its messages on disk)."""
    url = celery.conf.broker_url or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    queues = {route["queue"] for route in (celery.conf.task_routes or {}).values()} | {celery.conf.task_default_queue}
    chunks = [body for queue in queues for body in client.lrange(queue, 0, -1)]
    chunks += client.hvals("unacked")
    return b"\n".join(chunks)


def reap(store: RunStore, celery, stale_s: float, retries: int) -> list[tuple[str, str, str]]:
    """Queue again (or fail) every running stage whose heartbeat is older than `stale_s`, and every pending
    stage queued longer ago than that whose message the broker no longer holds (Redis restarted without
    persistence). Returns (run, stage, what was done) for each."""
    done = []
    cutoff = utcnow() - timedelta(seconds=stale_s)
    records = store.busy()
    lost_pending = [(r, n, s) for r in records for n, s in r.stages.items()
                    if s.state == StageState.pending and s.task and s.queued and s.queued < cutoff]  # fmt: skip
    if lost_pending:
        held = broker_messages(celery)
        for record, name, stage in lost_pending:
            if held is not None and record.run.encode() not in held:
                try:
                    enqueue(store, celery, record.run, name, stage.task["name"], stage.task["args"], stage.params,
                            retry=True)  # fmt: skip
                    done.append((record.run, name, "requeued (its message was lost)"))
                except BrokerUnavailable:
                    done.append((record.run, name, "failed"))
                log.warning("pending stage %s of run %s had no message in the broker: queued again", name, record.run)
    for record in records:
        for name, stage in record.stages.items():
            if stage.state != StageState.running or stage.heartbeat is None or stage.heartbeat > cutoff:
                continue
            if stage.task and stage.attempts <= retries:
                try:
                    enqueue(store, celery, record.run, name, stage.task["name"], stage.task["args"], stage.params,
                            retry=True)  # fmt: skip
                    done.append((record.run, name, "requeued"))
                except BrokerUnavailable:
                    done.append((record.run, name, "failed"))
            else:
                reason = f"its worker stopped (no heartbeat since {stage.heartbeat:%H:%M:%S} UTC) after "
                store.fail_stage(record.run, name, reason + f"{stage.attempts} attempt(s)")
                done.append((record.run, name, "failed"))
            log.warning("stage %s of run %s lost its worker: %s", name, record.run, done[-1][2])
    return done


def start_reaper(
    store: RunStore, celery, stale_s: float, retries: int, every_s: float, also: Callable[[], object] | None = None
) -> threading.Event:
    """Run `reap` (and `also`, e.g. the training jobs' reaper) every `every_s` seconds in a daemon thread; set
    the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        store.keep_reserve()
        while not stop.wait(every_s):
            try:
                store.keep_reserve()
                reap(store, celery, stale_s, retries)
                if also is not None:
                    also()
            except Exception:  # the reaper must outlive a bad record or a broker hiccup
                log.exception("reaper pass failed")

    threading.Thread(target=loop, name="stage-reaper", daemon=True).start()
    return stop
