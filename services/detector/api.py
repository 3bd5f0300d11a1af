"""`POST /detect`: a streamed video upload (multipart) or a path/glob under the data root (JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from celery import Celery
from fastapi import APIRouter, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from shared.api.deps import RunIdPath, confine, get_celery_dep, get_settings_dep, get_store
from shared.api.docs import MULTIPART_OR_JSON
from shared.api.uploads import receive_multipart
from shared.atomic import atomic_move
from shared.errors import ConflictError, InputError
from shared.frames import open_frames
from shared.run_store import RunStore
from shared.schemas import DetectOptions, DetectRequest
from shared.settings import Settings
from shared.tasks import BrokerUnavailable, enqueue
from shared.video import probe_video

from .registry import check_detector, resolve_classes, with_model_identity

router = APIRouter(tags=["detector"])
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


async def _from_upload(request: Request, settings: Settings, store: RunStore) -> tuple[str, str, DetectOptions]:
    upload = await receive_multipart(request, settings.data_root / "uploads", settings.upload_limit_bytes)
    try:
        if "file" not in upload.files:
            raise InputError("multipart field 'file' (the video) is missing", field="file")
        options = DetectOptions.model_validate(upload.fields)
        filename, temp_path, size = upload.files["file"]
        try:
            info = await run_in_threadpool(probe_video, temp_path)
        except InputError as exc:
            raise InputError(exc.message, source=filename or "upload", field="file") from None
        suffix = Path(filename).suffix.lower()
        record = store.create(inputs={"upload": filename, "bytes": size, "video": info.__dict__},
                              name=Path(filename or "upload").name)  # fmt: skip
        target = store.run_dir(record.run) / f"input{suffix if suffix in VIDEO_SUFFIXES else '.mp4'}"
        atomic_move(temp_path, target)
        return record.run, str(target), options
    finally:
        upload.discard()


async def _from_path(request: Request, settings: Settings, store: RunStore) -> tuple[str, str, DetectOptions]:
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON body: {exc.msg}") from None
    except ValueError as exc:  # not UTF-8 (or -16/-32), or an integer beyond Python's 4,300-digit limit
        raise InputError(f"invalid JSON body: {exc}"[:300]) from None
    req = DetectRequest.model_validate(body)
    path = confine(settings, req.path)
    source = await run_in_threadpool(open_frames, str(path))
    root = settings.data_root.resolve()
    escaped = [p for p in source.images or [] if not p.resolve().is_relative_to(root)]
    if escaped:  # a glob through a symlinked folder: every matched file must lie under the data root
        raise InputError(f"path {req.path!r} matches files outside the data root", field="path")
    record = store.create(inputs={"path": req.path, "frames": source.count, "size": source.size},
                          name=Path(req.path).name)  # fmt: skip
    return record.run, str(path), DetectOptions.model_validate(req.model_dump(exclude={"path"}))


async def _from_run(request: Request, parent: str, store: RunStore) -> tuple[str, str, DetectOptions]:
    """A child of `parent` on the same input video (hard-linked into its folder, not copied)."""
    record = store.get(parent)
    try:
        body = await request.json()
    except ValueError as exc:
        raise InputError(f"invalid JSON body: {exc}"[:300]) from None
    if not isinstance(body, dict):
        raise InputError("expected a JSON object of /detect options")
    options = DetectOptions.model_validate(body)
    frames = record.inputs.get("frames")
    if not frames or not Path(frames).exists():
        raise ConflictError(f"run {parent} has no input video to detect on")
    changed = options.model_dump(exclude_defaults=True, exclude={"detector"}, mode="json")
    change = " ".join([options.detector, *(f"{k}={v}" for k, v in changed.items())])
    linked = Path(frames).parent == store.run_dir(parent)  # an upload lives in its run's folder: link it over
    child = store.create_child(parent, change, share=(Path(frames).name,) if linked else ())
    if linked:
        frames = str(store.run_dir(child.run) / Path(frames).name)
    return child.run, frames, options


@router.post("/detect", status_code=202, openapi_extra=MULTIPART_OR_JSON)
async def detect(
    request: Request,
    settings: Settings = Depends(get_settings_dep),
    store: RunStore = Depends(get_store),
    celery: Celery = Depends(get_celery_dep),
):
    content_type = request.headers.get("content-type", "").lower()  # media types are case-insensitive
    if content_type.startswith("application/json"):
        run_id, input_path, options = await _from_path(request, settings, store)
    else:
        run_id, input_path, options = await _from_upload(request, settings, store)
    return _queue_detect(run_id, input_path, options, settings, store, celery)


@router.post("/runs/{run_id}/detect", status_code=202)
async def detect_again(
    run_id: RunIdPath,
    request: Request,
    settings: Settings = Depends(get_settings_dep),
    store: RunStore = Depends(get_store),
    celery: Celery = Depends(get_celery_dep),
):
    """Detect again on a run's input video (JSON body: the `/detect` options): a child run, no new upload."""
    child, input_path, options = await _from_run(request, run_id, store)
    return {**_queue_detect(child, input_path, options, settings, store, celery), "parent": run_id}


def _queue_detect(
    run_id: str, input_path: str, options: DetectOptions, settings: Settings, store: RunStore, celery: Celery
) -> dict:
    try:  # unknown detector or class names: refuse now rather than fail in the worker
        check_detector(options.detector)
        if options.weights:  # a caller's checkpoint path is confined to the data root and must exist
            options.weights = str(confine(settings, options.weights, "weights"))
            if not Path(options.weights).is_file():
                raise InputError("weights not found under the data root", field="weights")
        try:  # what a D-FINE checkpoint is, from its header (the API has no torch)
            options = with_model_identity(options)
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None
        resolve_classes(options)
    except (InputError, HTTPException):
        store.delete(run_id)
        raise
    params = options.model_dump(mode="json")
    store.update(run_id, lambda r: r.inputs.update(frames=input_path))  # the tracker reads the same frames
    try:
        enqueue(store, celery, run_id, "detect", "detector.detect", [run_id, input_path, params], params)
    except BrokerUnavailable as exc:  # the run exists and says why: give its id with the error
        raise HTTPException(503, {"message": str(exc), "run": run_id, "status_url": f"/runs/{run_id}"}) from None
    return {"run": run_id, "status_url": f"/runs/{run_id}"}
