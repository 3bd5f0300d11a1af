"""Evaluate a run in the run store: its tracks against its ground truth, cached per IoU threshold."""

from __future__ import annotations

from pathlib import Path

from shared.atomic import atomic_write_text
from shared.errors import ConflictError, GoneError, InputError, MissingInputError, NotFoundError
from shared.formats.conversions import det_db_to_mot
from shared.formats.det_db import read_det_db, read_det_db_classes, resolve_sequence
from shared.formats.mot_txt import read_mot
from shared.run_store import RunStore
from shared.schemas import DoctorReport, MetricsReport, StageRecord, StageState, score_threshold_of, utcnow

from .doctor import run_doctor
from .evaluate import evaluate
from .ground_truth import GT_NAMES, read_ground_truth
from .overlay import render_overlay
from .plots import write_plots


def metrics_name(iou: float, annotated_only: bool = False) -> str:
    """The cache file of one evaluation, keyed on the exact threshold (repr: no two values share a name)."""
    suffix = "_annotated" if annotated_only else ""
    return f"metrics{suffix}.json" if iou == 0.5 else f"metrics_iou{iou!r}{suffix}.json"


def evaluate_run(
    store: RunStore, run_id: str, iou: float = 0.5, plots: bool = True, annotated_only: bool = False
) -> MetricsReport:
    """Metrics for a run (computed once per threshold and frame scope, then read from `metrics*.json`)."""
    record = store.get(run_id)
    folder = store.run_dir(run_id)
    cached = folder / metrics_name(iou, annotated_only)
    if cached.is_file():
        return MetricsReport.model_validate_json(cached.read_text())
    track = record.stages.get("track")
    if track is None or track.state != StageState.succeeded:
        raise ConflictError(
            f"run {run_id}: track stage is {track.state if track else 'pending'}; no tracks to evaluate"
        )
    gt_path = store.gt_file(run_id)  # its own, or the run it was made from
    if gt_path is None:
        raise MissingInputError(f"run {run_id} has no ground truth: upload it with POST /runs/{run_id}/gt")
    _, gt = read_ground_truth(gt_path, num_frames=run_frame_count(record))
    if not (folder / "tracks.txt").is_file():
        store.output_missing(run_id, "tracks.txt")
        raise GoneError(f"run {run_id}: tracks.txt is no longer on disk; run the track stage again")
    listed = annotated_frames(store, run_id) if annotated_only else None
    report = evaluate(gt, read_mot(folder / "tracks.txt"), iou, annotated_only=annotated_only, annotated_frames=listed)
    artifacts = [cached.name]
    if plots and iou == 0.5 and not annotated_only:
        named = f" “{record.name}”" if record.name else ""
        title = f"run {run_id}{named}: tracks.txt vs {gt_path.name}"
        artifacts += [f"plots/{name}" for name in write_plots(report, folder / "plots", title)]
    atomic_write_text(cached, report.model_dump_json())

    def change(r) -> None:
        store.record_artifacts(r, folder, artifacts)
        stage = r.stages.get("eval") or StageRecord()
        if cached.name == "metrics.json" and stage.state != StageState.running:  # metrics shown = eval done
            now = utcnow()
            r.stages["eval"] = StageRecord(state=StageState.succeeded, params={"iou": iou}, attempts=stage.attempts,
                                           started=stage.started or now, finished=now)  # fmt: skip

    store.update(run_id, change)
    return report


_events_cache: dict[tuple, dict] = {}  # a few recent runs' events, keyed on the files' identity


def run_events(store: RunStore, run_id: str, iou: float, cls: int | None, annotated_only: bool) -> dict:
    """The run's CLEAR error events (`events.events_report`), computed once per version of its tracks and
    ground truth (their size and modification time are in the key, so a new upload is never served stale)."""
    from .events import events_report

    record = store.get(run_id)
    folder = store.run_dir(run_id)
    track = record.stages.get("track")
    if track is None or track.state != StageState.succeeded or not (folder / "tracks.txt").is_file():
        raise ConflictError(f"run {run_id}: track stage is {track.state if track else 'pending'}; no tracks to review")
    gt_path = store.gt_file(run_id)
    if gt_path is None:
        raise MissingInputError(f"run {run_id} has no ground truth: upload it with POST /runs/{run_id}/gt")
    files = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (folder / "tracks.txt", gt_path))
    listed = annotated_frames(store, run_id) if annotated_only else None
    key = (files, iou, cls, annotated_only, tuple(listed or ()))
    if key not in _events_cache:
        _, gt = read_ground_truth(gt_path, num_frames=run_frame_count(record))
        if len(_events_cache) >= 8:
            _events_cache.pop(next(iter(_events_cache)))
        _events_cache[key] = events_report(gt, read_mot(folder / "tracks.txt"), iou, cls, annotated_only, listed)
    return _events_cache[key]


def run_picks(store: RunStore, run_id: str, strategy: str, n: int, min_gap: int = 15) -> list:
    """The frames of a run worth annotating next (`picking.pick_frames`) from its det_db, tracks, ground truth
    (its frames count as annotated) and, for `errors`, its review events."""
    from .picking import STRATEGIES, pick_frames

    if strategy not in STRATEGIES:
        raise InputError(f"unknown pick {strategy!r}; known: {', '.join(STRATEGIES)}", field="pick")
    record = store.get(run_id)
    folder = store.run_dir(run_id)
    num_frames = run_frame_count(record)
    if num_frames is None or "det_db.json" not in record.artifacts:
        raise ConflictError(f"run {run_id} has no detections yet: frames are picked after its detect stage")
    det_db = read_det_db(folder / "det_db.json")
    detections = det_db_to_mot(det_db, resolve_sequence(det_db, None, "det_db.json"),
                               read_det_db_classes(folder / "det_db.json", det_db))  # fmt: skip
    tracks = read_mot(folder / "tracks.txt") if "tracks.txt" in record.artifacts else None
    if tracks is None and strategy in ("uncertain", "disagree", "errors"):
        raise ConflictError(f"run {run_id} has no tracks: `{strategy}` compares tracks with detections; "
                            "track it first or pick `uniform`")  # fmt: skip
    gt_path = store.gt_file(run_id)
    annotated = set(annotated_frames(store, run_id) or [])
    if gt_path is not None and not annotated:
        annotated = {int(f) for f in set(read_ground_truth(gt_path, num_frames=num_frames)[1].frame.tolist())}
    events = run_events(store, run_id, 0.5, None, True)["events"] if strategy == "errors" else None
    track = record.stages.get("track")
    threshold = score_threshold_of(track.params if track else None)
    return pick_frames(strategy, n, num_frames, annotated, threshold, detections, tracks, events, min_gap)


def install_ground_truth(
    store: RunStore, run_id: str, name: str, kind: str, source: str, annotated: list[int] | None = None
) -> None:
    """Record `name` (already in the run's folder) as the run's ground truth: the other format's file goes,
    metrics, plots and overlays of the old one (the run's and those of children that read it) are dropped.
    `annotated`: the frames a human has looked at (a pull's; frames with no box included), which
    `annotated_only` then scores; without it, the frames that carry ground truth."""
    folder = store.run_dir(run_id)

    def record(r) -> None:
        for other in set(GT_NAMES.values()) - {name}:
            r.artifacts.pop(other, None)
            (folder / other).unlink(missing_ok=True)
        store.forget_derived(r, folder)
        store.record_artifacts(r, folder, [name])
        r.inputs["gt"] = {"format": kind, "file": source}
        if annotated is None:
            r.inputs.pop("annotated_frames", None)
        else:
            r.inputs["annotated_frames"] = sorted(annotated)

    store.update(run_id, record)
    for child in store.descendants_without_gt(run_id):  # they read this ground truth: their metrics are stale
        store.update(child, lambda r: store.forget_derived(r, store.run_dir(r.run)))


def annotated_frames(store: RunStore, run_id: str) -> list[int] | None:
    """The frames the run's ground truth says were annotated (a pull records them), from the run that owns
    the ground truth; None when only the ground truth's own frames say it."""
    gt_path = store.gt_file(run_id)
    if gt_path is None:
        return None
    listed = store.get(gt_path.parent.name).inputs.get("annotated_frames")
    return [int(f) for f in listed] if isinstance(listed, list) and listed else None


def run_frame_count(record) -> int | None:
    """The run's video frame count once its detect stage has said it (None before)."""
    detect = record.stages.get("detect")
    return detect.params.get("det_db", {}).get("frames") if detect is not None else None


def plot_path(store: RunStore, run_id: str, name: str) -> Path:
    evaluate_run(store, run_id)  # plots are drawn with the default-threshold metrics
    path = store.artifact_path(run_id, f"plots/{name}.png")
    if not path.is_file():
        raise NotFoundError(f"run {run_id} has no plot {name!r}")
    return path


def doctor_run(store: RunStore, run_id: str) -> DoctorReport:
    """The doctor on whichever of a run's det_db, ground truth and tracks exist."""
    record = store.get(run_id)
    folder = store.run_dir(run_id)
    present = {n: folder / n for n in ("det_db.json", "tracks.txt") if n in record.artifacts}
    gt = store.gt_file(run_id)
    info = record.stages["detect"].params.get("det_db", {}) if "detect" in record.stages else {}
    size = tuple(info["frame_size"]) if info.get("frame_size") else None
    return run_doctor(present.get("det_db.json"), gt, present.get("tracks.txt"), info.get("sequence"),
                      info.get("frames"), size)  # fmt: skip


def render_run_overlay(store: RunStore, run_id: str) -> Path:
    """The run's video with whichever of ground truth, detections and tracks exist (rendered once, then cached)."""
    record = store.get(run_id)
    folder = store.run_dir(run_id)
    target = folder / "overlay.mp4"
    if "overlay.mp4" in record.artifacts:
        return target
    video = record.inputs.get("frames")  # the detect API records the frames the run was made from
    if video is None:
        raise ConflictError(f"run {run_id} has no input video to draw on")
    gt_path = store.gt_file(run_id)
    gt = read_ground_truth(gt_path, num_frames=run_frame_count(record))[1] if gt_path else None
    dets = None
    if "det_db.json" in record.artifacts:
        det_db = read_det_db(folder / "det_db.json")
        dets = det_db_to_mot(det_db, resolve_sequence(det_db, None, "det_db.json"))
    tracks = read_mot(folder / "tracks.txt") if "tracks.txt" in record.artifacts else None
    if gt is None and dets is None and tracks is None:
        raise ConflictError(f"run {run_id} has nothing to draw yet (no det_db, tracks or ground truth)")
    render_overlay(video, target, gt, dets, tracks)
    store.update(run_id, lambda r: store.record_artifacts(r, folder, ["overlay.mp4"]))
    return target
