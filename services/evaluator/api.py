"""`POST /runs/{run}/gt`: upload ground truth (Label Studio JSON or MOT txt), validated before it is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from shared.api.deps import RunIdPath, get_celery_dep, get_settings_dep, get_store
from shared.api.docs import MULTIPART_FILE, binary
from shared.api.files import open_file_response
from shared.api.uploads import receive_multipart
from shared.atomic import atomic_move
from shared.errors import ConflictError, InputError
from shared.run_store import RunStore
from shared.schemas import DoctorReport, LabelPull, LabelPush, MetricsReport, StageState
from shared.settings import Settings
from shared.tasks import BrokerUnavailable, enqueue

from .ground_truth import GT_NAMES, check_ground_truth
from .plots import plot_comparison
from .review import boxes_window, review_video, run_tables
from .store import (
    doctor_run,
    evaluate_run,
    install_ground_truth,
    plot_path,
    render_run_overlay,
    run_events,
    run_frame_count,
)

router = APIRouter(tags=["evaluator"])
SUMMARY = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")


@router.post("/runs/{run_id}/gt", status_code=201, openapi_extra=MULTIPART_FILE)
async def upload_gt(
    run_id: RunIdPath,
    request: Request,
    settings: Settings = Depends(get_settings_dep),
    store: RunStore = Depends(get_store),
):
    folder = store.run_dir(run_id)  # 404 before reading a byte of the body
    upload = await receive_multipart(request, settings.data_root / "uploads", settings.upload_limit_bytes)
    try:
        if "file" not in upload.files:
            raise InputError("multipart field 'file' (the ground truth) is missing", field="file")
        filename, temp_path, _ = upload.files["file"]
        frames = run_frame_count(store.get(run_id))
        kind, summary = await run_in_threadpool(check_ground_truth, temp_path, filename or "upload", frames)
        name = GT_NAMES[kind]
        atomic_move(temp_path, folder / name)
    finally:
        upload.discard()

    install_ground_truth(store, run_id, name, kind, filename)
    return {
        "run": run_id,
        "format": kind,
        "artifact": name,
        "rows": summary.rows,
        "tracks": summary.ids,
        "frames": [summary.first_frame, summary.last_frame] if summary.rows else [],
    }


def _queue_label(run_id: str, action: str, params: dict, store: RunStore, settings: Settings, celery) -> dict:
    """Check what can be checked now (the run, Label Studio's address and token), then queue the task."""
    from .label_studio import LabelStudio, LabelStudioError

    record = store.get(run_id)
    label = record.stages.get("label")
    if label is not None and (label.state == StageState.running or (label.state == StageState.pending and label.task)):
        raise ConflictError(f"run {run_id}: a Label Studio {label.params.get('action', 'push')} is under way")
    try:
        studio = LabelStudio(settings.label_studio_url, settings.label_studio_token, timeout=15)
        try:
            studio.check()
        finally:
            studio.close()
    except LabelStudioError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    try:
        enqueue(
            store, celery, run_id, "label", "evaluator.label", [run_id, action, params], {"action": action, **params}
        )
    except BrokerUnavailable as exc:
        raise HTTPException(503, {"message": str(exc), "run": run_id, "status_url": f"/runs/{run_id}"}) from None
    return {"run": run_id, "status_url": f"/runs/{run_id}"}


@router.post("/runs/{run_id}/label", status_code=202)
def label_push(
    run_id: RunIdPath,
    req: LabelPush,
    store: RunStore = Depends(get_store),
    settings: Settings = Depends(get_settings_dep),
    celery=Depends(get_celery_dep),
):
    """Pick frames of the run and send those the Label Studio project lacks, the tracks as predictions (the
    run's `label` stage; its `params.outcome` says what was done and why each frame was picked)."""
    record = store.get(run_id)
    if "det_db.json" not in record.artifacts:
        raise ConflictError(f"run {run_id} has no detections yet: frames are picked after its detect stage")
    if req.pick != "uniform" and "tracks.txt" not in record.artifacts:
        raise ConflictError(f"run {run_id} has no tracks: `{req.pick}` compares tracks with detections")
    return _queue_label(run_id, "push", req.model_dump(), store, settings, celery)


@router.post("/runs/{run_id}/label/pull", status_code=202)
def label_pull(
    run_id: RunIdPath,
    req: LabelPull,
    store: RunStore = Depends(get_store),
    settings: Settings = Depends(get_settings_dep),
    celery=Depends(get_celery_dep),
):
    """Merge the project's finished annotations of this run into its ground truth (the `label` stage)."""
    return _queue_label(run_id, "pull", req.model_dump(), store, settings, celery)


@router.get("/eval/{run_id}", response_model=MetricsReport)
def get_eval(
    run_id: RunIdPath,
    iou: float = Query(0.5, gt=0.0, le=1.0),
    annotated_only: bool = Query(False, description="score only frames that carry ground truth"),
    store: RunStore = Depends(get_store),
):
    """Metrics JSON (with `per_class` when the ground truth has 2+ classes): computed on the first call,
    then served from the run's cache."""
    return evaluate_run(store, run_id, iou, annotated_only=annotated_only)


CLASS_IDS = {"player": 1, "ball": 2}


@router.get("/eval/{run_id}/events")
def get_events(
    run_id: RunIdPath,
    kind: Literal["fn", "fp", "idsw", "frag"] | None = Query(None, description="only events of this kind"),
    cls: str | None = Query(None, alias="class", max_length=16, pattern=r"^(player|ball|-?\d{1,9})$",
                            description="events of the matching on this class alone (id, or player/ball)"),
    start: int | None = Query(None, alias="from", ge=1, le=10_000_000, description="first frame (1-based)"),
    end: int | None = Query(None, alias="to", ge=1, le=10_000_000, description="last frame (inclusive)"),
    annotated_only: bool = Query(False, description="score only frames that carry ground truth"),
    iou: float = Query(0.5, gt=0.0, le=1.0),
    store: RunStore = Depends(get_store),
):  # fmt: skip
    """Every false negative, false positive, ID switch and fragmentation of TrackEval's CLEAR matching, for a
    frame range: `{"events": [{"frame", "kind", "class", "gt_id", "pred_id", "prev_pred_id", "box"}…],
    "counts": {"fn", "fp", "idsw", "frag"}}`; `counts` are the whole run's (equal TrackEval's CLR_FN,
    CLR_FP, IDSW and Frag), `events` those in the range and of the kind asked for."""
    class_id = None if cls is None else CLASS_IDS[cls] if cls in CLASS_IDS else int(cls)
    report = run_events(store, run_id, iou, class_id, annotated_only)
    events = [e for e in report["events"] if (kind is None or e["kind"] == kind)
              and (start is None or e["frame"] >= start) and (end is None or e["frame"] <= end)]  # fmt: skip
    return {"events": events, "counts": report["counts"]}


@router.get("/runs/{run_id}/boxes")
def get_boxes(
    run_id: RunIdPath,
    start: int = Query(1, alias="from", ge=1, le=10_000_000, description="first frame (1-based)"),
    end: int | None = Query(None, alias="to", ge=1, le=10_000_000, description="last frame, inclusive"),
    layers: str = Query("gt,det,tracks", max_length=40, pattern=r"^(gt|det|tracks)(,(gt|det|tracks))*$"),
    store: RunStore = Depends(get_store),
):
    """Ground truth, detections and tracks for a window of frames (at most 2,000), keyed by frame:
    `{"from", "to", "frames": {"<frame>": {"gt": [[id, class, l, t, w, h]…], "det": [[score, class, l, t, w, h]…],
    "tracks": [[id, class, l, t, w, h]…]}}}`; a layer the run does not have yet is absent."""
    tables = run_tables(store, run_id, tuple(layers.split(",")))
    return boxes_window(tables, start, end if end is not None else start + 199)


@router.get("/runs/{run_id}/video", response_class=Response, responses=binary("video/mp4"))
def get_video(run_id: RunIdPath, request: Request, store: RunStore = Depends(get_store)):
    """The run's video as a browser plays it (H.264 MP4; other inputs get a copy made once); byte ranges
    (206) let the review page seek."""
    return _serve(review_video(store, run_id), "video/mp4", "the review video", request.headers.get("range"))


def _serve(path: Path, media_type: str, what: str, range_header: str | None = None):
    try:
        return open_file_response(path, media_type, range_header=range_header)
    except FileNotFoundError:  # replaced or dropped between the check and the open (a re-track, say)
        raise ConflictError(f"{what} changed while it was requested; ask again") from None


@router.get("/eval/{run_id}/plots/{name}.png", response_class=Response, responses=binary("image/png"))
def get_plot(run_id: RunIdPath, name: str, store: RunStore = Depends(get_store)):
    return _serve(plot_path(store, run_id, name), "image/png", f"plot {name!r}")


class CompareRequest(BaseModel):
    runs: list[str] = Field(min_length=1, max_length=20)
    labels: list[Annotated[str, Field(max_length=200)]] | None = Field(None, max_length=20)
    iou: float = Field(0.5, gt=0.0, le=1.0)


@router.post("/eval/compare")
def compare(req: CompareRequest, store: RunStore = Depends(get_store)):
    """Main scores of several runs side by side, plus a comparison chart stored with the first run."""
    labels = req.labels or req.runs
    if len(labels) != len(req.runs):
        raise InputError("labels must match runs one to one", field="labels")
    reports = [evaluate_run(store, run, req.iou) for run in req.runs]
    folder = store.run_dir(req.runs[0])
    plot_comparison(reports, labels, folder / "plots" / "comparison.png", "runs " + ", ".join(req.runs))
    store.update(req.runs[0], lambda r: store.record_artifacts(r, folder, ["plots/comparison.png"]))
    return {
        "iou_threshold": req.iou,
        "runs": [
            {"run": run, "label": label, **{k: r.trackeval[k] for k in SUMMARY}, "f1_score": r.framewise["f1_score"]}
            for run, label, r in zip(req.runs, labels, reports, strict=True)
        ],
        "plot": f"/runs/{req.runs[0]}/artifacts/plots/comparison.png",
    }


@router.get("/runs/{run_id}/doctor", response_model=DoctorReport)
def doctor(run_id: RunIdPath, store: RunStore = Depends(get_store)):
    """Findings about the run's det_db, ground truth and tracks (whichever exist)."""
    return doctor_run(store, run_id)


@router.get("/runs/{run_id}/overlay.mp4", response_class=Response, responses=binary("video/mp4"))
def overlay(run_id: RunIdPath, request: Request, store: RunStore = Depends(get_store)):
    """The run's video with ground truth, detections and tracks drawn on it (rendered once, then cached)."""
    return _serve(render_run_overlay(store, run_id), "video/mp4", "the overlay", request.headers.get("range"))
