"""Run routes every service serves: list runs, one run's state, its artifacts."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel

from shared.errors import ConflictError, GoneError, InputError, NotFoundError
from shared.run_index import MAX_LIMIT, PageQuery, iso
from shared.run_store import RunStore, shown
from shared.schemas import MAX_TAG_CHARS, RUN_ID_RE, RunPatch, RunRecord, utcnow
from shared.settings import Settings

from .deps import RunIdPath, get_settings_dep, get_store
from .docs import ARTIFACT_TYPES, binary
from .files import open_file_response

router = APIRouter(tags=["runs"])


def lost_after(settings: Settings) -> float:
    """A running stage without a heartbeat for this long reads as failed (the reaper normally acts after
    `stage_stale_s`; this covers the case where nothing can: no live worker, or an unwritable data root)."""
    return 5 * settings.stage_stale_s


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"rows per page, 1 to {MAX_LIMIT}")]
Cursor = Annotated[str | None, Query(max_length=512, description="`next` of the previous page")]
Text = Annotated[str | None, Query(max_length=200, description="plain text searched in name, note and video")]
Word = Annotated[str | None, Query(max_length=MAX_TAG_CHARS)]
Id = Annotated[str | None, Query(pattern=RUN_ID_RE.pattern)]
RunState = Literal["pending", "queued", "running", "succeeded", "failed"]


class ListedSummary(BaseModel):
    """What every listing row has (`GET /runs`, `/sweeps`, `/train`)."""

    name: str
    tags: list[str]
    note: str
    created: str


class RunSummary(ListedSummary):
    """One row of `GET /runs`: the run index's columns (metrics null until the run is evaluated)."""

    run: str
    parent: str | None
    sweep: str | None
    video: str
    detector: str | None
    tracker: str | None
    weights: str | None
    state: str
    stages: dict[str, str]
    HOTA: float | None
    DetA: float | None
    AssA: float | None
    IDF1: float | None
    MOTA: float | None
    IDSW: int | None
    HOTA_ball: float | None
    HOTA_player: float | None


class RunPage(BaseModel):
    runs: list[RunSummary]
    next: str | None
    total: int


def summary_of(row, key: str, columns: tuple[str, ...]) -> dict:
    """The common part of a sweep's or job's listing row: id, name, tags, note, created, then `columns`."""
    common = {key: getattr(row, key), "name": row.name, "tags": json.loads(row.tags), "note": row.note,
              "created": iso(row.created)}  # fmt: skip
    return {**common, **{c: getattr(row, c) for c in columns}}


def paged(fetch, query: PageQuery):
    """A page from the index; a cursor that is not this listing's is a 422 naming `cursor`."""
    try:
        return fetch(query)
    except InputError as exc:
        raise HTTPException(422, [{"loc": ["query", exc.field or "?"], "msg": str(exc)}]) from None


@router.get("/runs", response_model=RunPage)
def list_runs(
    store: RunStore = Depends(get_store),
    settings: Settings = Depends(get_settings_dep),
    limit: Limit = 50,
    cursor: Cursor = None,
    q: Text = None,
    tag: Word = None,
    state: RunState | None = None,
    detector: Word = None,
    tracker: Word = None,
    parent: Id = None,
    sweep: Id = None,
    sort: Literal["-created", "created", "-hota", "-idf1", "-mota", "name"] = "-created",
):
    """A page of run summaries from the run index, newest first unless `sort` says otherwise; `total` counts
    every run matching the filters; `next` is the cursor of the following page (null on the last)."""
    wanted = {"tag": tag, "state": state, "detector": detector, "tracker": tracker, "parent": parent, "sweep": sweep}
    filters = tuple((k, v) for k, v in wanted.items() if v is not None)
    query = PageQuery(limit=limit, cursor=cursor, sort=sort, q=q, filters=filters)
    lost_before = utcnow().timestamp() - lost_after(settings)
    return paged(lambda query: store.runs_page(query, lost_before), query)


@router.get("/runs/{run_id}", response_model=RunRecord)
def get_run(run_id: RunIdPath, store: RunStore = Depends(get_store), settings: Settings = Depends(get_settings_dep)):
    return shown(store.get(run_id), lost_after(settings), store.root)


@router.get("/runs/{run_id}/artifacts/{name:path}", response_class=Response, responses=binary(*ARTIFACT_TYPES))
def get_artifact(run_id: RunIdPath, name: str, store: RunStore = Depends(get_store)):
    record = store.get(run_id)
    if name not in record.artifacts:
        raise NotFoundError(f"run {run_id} has no artifact {name!r}")
    try:
        return open_file_response(store.artifact_path(run_id, name))
    except FileNotFoundError:
        store.output_missing(run_id, name)
        raise GoneError(f"run {run_id}: artifact {name!r} is no longer on disk; the run's record now says so") from None


@router.patch("/runs/{run_id}", response_model=RunRecord)
def patch_run(
    run_id: RunIdPath, change: RunPatch, store: RunStore = Depends(get_store), settings=Depends(get_settings_dep)
):
    """Name, tags and note of a run (fields left out stay as they are)."""

    def apply(record: RunRecord) -> None:
        for field, value in change.model_dump(exclude_none=True).items():
            setattr(record, field, value)

    return shown(store.update(run_id, apply), lost_after(settings), store.root)


@router.delete("/runs/{run_id}", status_code=204, response_class=Response)
def delete_run(run_id: RunIdPath, store: RunStore = Depends(get_store)):
    """Remove a run and its folder (409 while one of its stages runs or is queued); its children keep
    working: they are given the ground truth they read from it."""
    busy = store.busy_stage(run_id)
    if busy is not None:
        raise ConflictError(f"run {run_id}: its {busy} stage is running or queued; delete it when that ends")
    store.delete(run_id)
    return Response(status_code=204)
