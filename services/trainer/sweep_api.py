"""`POST /sweeps`, `GET /sweeps/{id}` (+ leaderboard CSV/JSON and plots): tracker sweeps over HTTP.

Each combination becomes an ordinary child run: it gets the parent's det_db and ground truth (copied into its
folder; its detect stage is recorded as done with the parent's parameters, so nothing is detected again) and
the contract's task `tracker.track`, which queues `evaluator.evaluate` once its tracks are written (both
recorded in the child's stages, so the reaper queues either again if the broker loses it); every worker shares
the grid and `GET /eval/{child}` works as for any run. A child that fails fails alone; the sweep's state and
leaderboard are computed from the children's records on every read. With `"search": {"trials": N}` the N
combinations are drawn by Optuna's TPE sampler over the grid's ranges up front (all trials are asked before
any result is known, so this is TPE's random start-up phase; the CLI's `--search optuna` feeds results back).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Literal

from celery import Celery
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.responses import FileResponse, PlainTextResponse
from pydantic import BaseModel

from shared.api.deps import IdPath, confine, get_celery_dep, get_settings_dep, get_store
from shared.api.docs import binary
from shared.api.runs import Cursor, Id, Limit, ListedSummary, Text, Word, lost_after, paged, summary_of
from shared.atomic import atomic_write_text
from shared.errors import ConflictError, InputError, MissingInputError, NotFoundError
from shared.run_index import PageQuery, sweep_row
from shared.run_store import RunStore
from shared.schemas import (
    MAX_NAME_CHARS,
    MetricsReport,
    RunPatch,
    StageState,
    SweepChild,
    SweepRecord,
    SweepRequest,
    utcnow,
)
from shared.settings import Settings

from .jobs import new_job_id
from .sweep_plots import plot_sweep
from .sweeps import (
    combinations,
    leaderboard_csv,
    ranked,
    row_from_report,
    suggest,
    track_options,
    with_weights,
)

router = APIRouter(tags=["sweeps"])
_SWEEP_ID = re.compile(r"^[0-9a-f]{16}$")


def _folder(settings: Settings, sweep_id: str) -> Path:
    return settings.data_root.resolve() / "sweeps" / sweep_id


def _confined_weights(settings: Settings, grid: dict[str, list]) -> dict[str, list]:
    if "weights" not in grid:
        return grid
    paths = []
    for value in grid["weights"]:
        path = confine(settings, str(value))
        if not path.is_file():
            raise InputError(f"weights {value!r} not found under the data root", field="weights")
        paths.append(str(path))
    return {**grid, "weights": paths}


def _draw(req: SweepRequest, grid: dict[str, list]) -> list[dict]:
    if req.search is None:
        return combinations(req.tracker, grid)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    drawn = [suggest(study.ask(), grid) for _ in range(req.search.trials)]
    for params in drawn:
        track_options(req.tracker, params)
    return drawn


def _child(store: RunStore, parent: str, sweep_id: str, params: dict) -> str:
    """A child run holding the parent's det_db (its ground truth is read from the parent)."""
    change = "sweep " + " ".join(f"{k}={v}" for k, v in params.items())
    return store.create_tracking_child(parent, change, {"sweep": sweep_id, "sweep_params": params}).run


@router.post("/sweeps", status_code=202)
def start_sweep(
    req: SweepRequest,
    store: RunStore = Depends(get_store),
    celery: Celery = Depends(get_celery_dep),
    settings: Settings = Depends(get_settings_dep),
):
    record = store.get(req.run)  # 404 for an unknown run
    detect = record.stages.get("detect")
    if detect is None or detect.state != StageState.succeeded:
        raise ConflictError(f"run {req.run}: detect stage is {detect.state if detect else 'pending'}; a sweep "
                            "tracks its finished det_db")  # fmt: skip
    if store.gt_file(req.run) is None:
        raise MissingInputError(f"run {req.run} has no ground truth: upload it with POST /runs/{req.run}/gt")
    try:
        grid = _confined_weights(settings, with_weights(req.grid, req.weights))
        drawn = _draw(req, grid)
    except InputError as exc:  # a bad grid key or value is a bad option: 422 like every other option
        raise HTTPException(422, str(exc)) from None
    sweep_id = new_job_id()
    name = f"{record.name or req.run} · sweep {req.tracker} {', '.join(grid)}"[:MAX_NAME_CHARS]
    sweep = SweepRecord(sweep=sweep_id, run=req.run, tracker=req.tracker, grid=grid, search=req.search, name=name)
    info = detect.params.get("det_db", {})
    tasks = []
    for params in drawn:
        child = _child(store, req.run, sweep_id, params)
        options = track_options(req.tracker, params).model_dump(mode="json")
        args = [child, options, info.get("sequence"), info.get("frames"), True]  # True: then evaluate
        store.reset_stage(child, "track", options, {"name": "tracker.track", "args": args})  # for the reaper
        sweep.children.append(SweepChild(run=child, params=params))
        tasks.append(args)
    folder = _folder(settings, sweep_id)
    folder.mkdir(parents=True, exist_ok=True)
    save_sweep(store, folder, sweep)
    for child, args in zip(sweep.children, tasks, strict=True):
        try:
            celery.send_task("tracker.track", args=args)
        except Exception as exc:
            store.fail_stage(child.run, "track", f"could not queue the task: {type(exc).__name__}: {exc}")
    return {"sweep": sweep_id, "status_url": f"/sweeps/{sweep_id}"}


def save_sweep(store: RunStore, folder: Path, record: SweepRecord) -> None:
    """Write `sweep.json` (atomically) and its index row."""
    atomic_write_text(folder / "sweep.json", record.model_dump_json(indent=1))
    store.index.put_rows("sweep", [sweep_row(record)])


def read_sweep(settings: Settings, sweep_id: str) -> SweepRecord:
    path = _folder(settings, sweep_id) / "sweep.json"
    if not _SWEEP_ID.match(sweep_id) or not path.is_file():
        raise NotFoundError(f"no sweep {sweep_id!r}")
    return SweepRecord.model_validate_json(path.read_text(encoding="utf-8"))


def _child_row(store: RunStore, child: SweepChild) -> dict:
    record = store.get(child.run)
    stages = [record.stages.get(s) for s in ("track", "eval")]
    failed = next((s for s in stages if s is not None and s.state == StageState.failed), None)
    if failed is not None:
        return row_from_report(child.run, child.params, None, "failed", failed.error)
    metrics = store.run_dir(child.run) / "metrics.json"
    tracked = stages[0] is not None and stages[0].state == StageState.succeeded
    if tracked and metrics.is_file():  # evaluated by its eval stage, or on request (GET /eval) before it
        report = MetricsReport.model_validate_json(metrics.read_text(encoding="utf-8"))
        return row_from_report(child.run, child.params, report, "succeeded", None)
    running = any(s is not None and s.state == StageState.running for s in stages)
    return row_from_report(child.run, child.params, None, "running" if running else "pending", None)


def sweep_status(store: RunStore, record: SweepRecord) -> dict:
    rows = [_child_row(store, child) for child in record.children]
    states = {r["state"] for r in rows}
    done = sum(r["state"] in ("succeeded", "failed") for r in rows)
    if done == len(rows):
        state = "failed" if states == {"failed"} else "succeeded"
    else:
        state = "running" if states - {"pending"} else "pending"
    failed = [{"run": r["run"], "params": r["params"], "error": r["error"]} for r in rows if r["state"] == "failed"]
    return {"sweep": record.sweep, "run": record.run, "tracker": record.tracker, "state": state,
            "progress": {"done": done, "total": len(rows)}, "grid": record.grid, "failed": failed,
            "leaderboard": ranked(rows), "name": record.name, "tags": record.tags, "note": record.note,
            "created": record.model_dump(mode="json", include={"created"})["created"]}  # fmt: skip


@router.get("/sweeps/{sweep_id}")
def get_sweep(sweep_id: IdPath, store: RunStore = Depends(get_store), settings: Settings = Depends(get_settings_dep)):
    return sweep_status(store, read_sweep(settings, sweep_id))


@router.get("/sweeps/{sweep_id}/leaderboard.csv", response_class=Response, responses=binary("text/csv"))
def get_leaderboard_csv(
    sweep_id: IdPath, store: RunStore = Depends(get_store), settings: Settings = Depends(get_settings_dep)
):
    board = sweep_status(store, read_sweep(settings, sweep_id))["leaderboard"]
    disposition = {"Content-Disposition": f'attachment; filename="sweep-{sweep_id}.csv"'}
    return PlainTextResponse(leaderboard_csv(board), media_type="text/csv", headers=disposition)


@router.get("/sweeps/{sweep_id}/leaderboard.json")
def get_leaderboard_json(
    sweep_id: IdPath, store: RunStore = Depends(get_store), settings: Settings = Depends(get_settings_dep)
):
    return sweep_status(store, read_sweep(settings, sweep_id))["leaderboard"]


@router.get("/sweeps/{sweep_id}/plots/{name}.png", response_class=Response, responses=binary("image/png"))
def get_sweep_plot(
    sweep_id: IdPath, name: str, store: RunStore = Depends(get_store), settings: Settings = Depends(get_settings_dep)
):
    record = read_sweep(settings, sweep_id)
    if name not in ("ranked", "heatmap"):
        raise NotFoundError(f"no sweep plot {name!r} (ranked, heatmap)")
    status = sweep_status(store, record)
    folder = _folder(settings, sweep_id) / "plots"
    # drawn again only when the leaderboard changed (drawing took 1.5 s a request)
    named = f" “{record.name}”" if record.name else ""
    title = f"sweep {sweep_id}{named}: {record.tracker} on run {record.run} (its det_db.json vs its ground truth)"
    drawn_for = hashlib.sha256(
        json.dumps([status["leaderboard"], record.grid, title], default=str).encode()
    ).hexdigest()
    key = folder / ".drawn_for"
    if not key.is_file() or key.read_text() != drawn_for:
        plot_sweep(status["leaderboard"], record.grid, folder, title, ranked)
        atomic_write_text(key, drawn_for)
    path = folder / f"{name}.png"
    if not path.is_file():
        raise NotFoundError(f"sweep {sweep_id} has no {name} plot (it needs two varied parameters and results)")
    return FileResponse(path, media_type="image/png")


def _state_of(counts: dict[str, int], planned: int) -> tuple[str, int, int]:
    """(state, done, total) of a sweep from its children's run states (as `sweep_status` decides)."""
    total = sum(counts.values()) or planned
    done = counts.get("succeeded", 0) + counts.get("failed", 0)
    if total and done == total:
        return ("failed" if counts.get("failed", 0) == total else "succeeded"), done, total
    return ("running" if counts.get("running", 0) or done else "pending"), done, total


class SweepSummary(ListedSummary):
    sweep: str
    run: str
    tracker: str
    state: str
    progress: dict[str, int]


class SweepPage(BaseModel):
    sweeps: list[SweepSummary]
    next: str | None
    total: int


@router.get("/sweeps", response_model=SweepPage)
def list_sweeps(
    store: RunStore = Depends(get_store),
    settings: Settings = Depends(get_settings_dep),
    limit: Limit = 50,
    cursor: Cursor = None,
    q: Text = None,
    tag: Word = None,
    run: Id = None,
    tracker: Word = None,
    sort: Literal["-created", "created", "name"] = "-created",
):
    """A page of sweeps from the run index, newest first; each with its state and progress counted from its
    children's index rows."""
    filters = tuple((k, v) for k, v in (("tag", tag), ("run", run), ("tracker", tracker)) if v is not None)
    found = paged(store.index.sweeps, PageQuery(limit=limit, cursor=cursor, sort=sort, q=q, filters=filters))
    counts = store.index.sweep_states([row.sweep for row in found["rows"]], utcnow().timestamp() - lost_after(settings))
    sweeps = []
    for row in found["rows"]:
        state, done, total = _state_of(counts[row.sweep], row.total)
        sweeps.append({**summary_of(row, "sweep", ("run", "tracker")), "state": state,
                       "progress": {"done": done, "total": total}})  # fmt: skip
    return {"sweeps": sweeps, "next": found["next"], "total": found["total"]}


@contextlib.contextmanager
def _locked(folder: Path):
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@router.patch("/sweeps/{sweep_id}")
def patch_sweep(
    sweep_id: IdPath, change: RunPatch, store: RunStore = Depends(get_store), settings=Depends(get_settings_dep)
):
    """Name, tags and note of a sweep (fields left out stay as they are); answers the sweep as GET does."""
    read_sweep(settings, sweep_id)  # 404 for an unknown sweep
    folder = _folder(settings, sweep_id)
    with _locked(folder):
        record = read_sweep(settings, sweep_id)
        for field, value in change.model_dump(exclude_none=True).items():
            setattr(record, field, value)
        save_sweep(store, folder, record)
    return sweep_status(store, record)


@router.delete("/sweeps/{sweep_id}", status_code=204, response_class=Response)
def delete_sweep(sweep_id: IdPath, store: RunStore = Depends(get_store), settings=Depends(get_settings_dep)):
    """Remove a sweep with its child runs (its combinations); 409 while one of them runs or is queued."""
    record = read_sweep(settings, sweep_id)
    children = [c.run for c in record.children if (store.runs_dir / c.run / "run.json").is_file()]
    busy = [(c, stage) for c in children if (stage := store.busy_stage(c)) is not None]
    if busy:
        run, stage = busy[0]
        raise ConflictError(f"sweep {sweep_id}: the {stage} stage of its run {run} is running or queued "
                            f"({len(busy)} of {len(children)} runs busy); delete it when they end")  # fmt: skip
    for child in children:
        store.delete(child)
    shutil.rmtree(_folder(settings, sweep_id))
    store.index.drop("sweep", sweep_id)
    return Response(status_code=204)
