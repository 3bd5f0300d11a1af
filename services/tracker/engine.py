"""Turn a det_db into MOT tracks with a named tracker (pure core: no FastAPI, no Celery)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from shared.errors import InputError
from shared.formats.det_db import MAX_PROPOSALS_PER_FRAME, det_db_key, parse_key, resolve_sequence
from shared.formats.mot_txt import MotTable
from shared.frames import FrameSource, frame_workers, prepared_frames
from shared.schemas import BYTETRACK_DEFAULTS, MOTRV2_SCORE_THRESHOLD, TrackOptions

from .bytetrack import ByteTrack

AVAILABLE = ("bytetrack", "motrv2")
ProgressFn = Callable[[int, int | None], None]


def check_tracker(options: TrackOptions) -> None:
    """Refuse an unknown tracker or option before any work (and without loading a model)."""
    if options.tracker not in AVAILABLE:
        raise InputError(f"unknown tracker {options.tracker!r}; available: {', '.join(AVAILABLE)}", field="tracker")
    # each tracker's knobs were checked by the schema (TRACKER_KNOBS): nothing is imported here, so the API
    # (whose image has no torch) answers for MOTRv2 as it does for ByteTrack
    if options.tracker == "motrv2" and not options.weights:
        raise InputError("motrv2 needs weights (a checkpoint path)", field="weights")


def build_tracker(options: TrackOptions, device: str = "cpu", model=None):
    """A fresh tracker; for motrv2 `model` is a loaded model to reuse (else loaded from the weights)."""
    if options.tracker not in AVAILABLE:
        check_tracker(options)
    extra = dict(options.options)
    if options.tracker == "bytetrack":
        if options.score_threshold is not None:
            extra["score_threshold"] = options.score_threshold
        return ByteTrack(**extra)
    from .motrv2.tracker import MOTRv2Tracker, load_tracker_model

    model = model if model is not None else load_tracker_model(options.weights, device)
    threshold = MOTRV2_SCORE_THRESHOLD if options.score_threshold is None else options.score_threshold
    return MOTRv2Tracker(model, device, threshold, **extra)


def frame_keys(
    det_db: Mapping[str, np.ndarray], sequence: str, num_frames: int | None, source: str = "det_db"
) -> list[str]:
    """Keys for frames 1..N; every one must be present (MOTRv2 fails on a missing key)."""
    if num_frames is None:
        num_frames = max(f for key in det_db if (p := parse_key(key)) and p[0] == sequence for f in [p[1]])
    keys = [det_db_key(sequence, f) for f in range(1, num_frames + 1)]
    missing = [k for k in keys if k not in det_db]
    if missing:
        available = sorted(k for k in det_db if k.startswith(f"{sequence}/"))[:1] or list(det_db)[:1]
        raise InputError(
            f"{len(missing)} of {num_frames} frames have no det_db key: expected {missing[0]!r}, "
            f"available e.g. {available[0] if available else None!r}",
            source=source,
        )
    crowded = next((k for k in keys if len(det_db[k]) > MAX_PROPOSALS_PER_FRAME), None)
    if crowded is not None:
        raise InputError(f"{len(det_db[crowded]):,} proposals in one frame, more than {MAX_PROPOSALS_PER_FRAME:,} "
                         "(`motpipe doctor` lists such frames)", source=source, where=crowded)  # fmt: skip
    return keys


def run_tracking(
    det_db: Mapping[str, np.ndarray],
    options: TrackOptions,
    sequence: str | None = None,
    num_frames: int | None = None,
    progress: ProgressFn | None = None,
    source: str = "det_db",
    frames: FrameSource | None = None,
    tracker=None,
    classes: Mapping[str, np.ndarray] | None = None,
) -> MotTable:
    """Track frame by frame; frames are numbered 1.. in video / sorted-file order, as det_db keys are.
    `classes`: the det_db's classes sidecar (trackers then keep each track's class)."""
    tracker = tracker or build_tracker(options)
    if getattr(tracker, "needs_frames", False) and frames is None:
        raise InputError(f"{options.tracker} needs the frames (a video or image folder)", field="frames")
    sequence = resolve_sequence(det_db, sequence, source)
    keys = frame_keys(det_db, sequence, frames.count if frames is not None else num_frames, source)
    if frames is not None and getattr(tracker, "needs_frames", False):  # decoded beside the tracker, prepared too
        workers = frame_workers(getattr(tracker, "device", "cpu"))
        images = prepared_frames(frames, getattr(tracker, "prepare_frame", None), workers)
    else:  # ByteTrack reads no pixels: the video (when given) only says how many frames there are
        images = ((n, None) for n in range(1, len(keys) + 1))
    rows = []
    for (number, image), key in zip(images, keys, strict=False):
        dets = np.asarray(det_db[key]).reshape(-1, 5)
        if classes is not None:
            dets = np.column_stack([dets, classes[key]])
        tracks = tracker.update(dets, image)
        if len(tracks):
            n = len(tracks)
            label = tracks[:, 6:7] if tracks.shape[1] > 6 else np.full((n, 1), -1)
            rows.append(np.column_stack([np.full(n, number), tracks[:, :6], label, np.full((n, 2), -1)]))
        if progress:
            progress(number, len(keys))
    return MotTable.from_matrix(np.concatenate(rows) if rows else np.zeros((0, 10)))


# a det_db in which fewer than this share of boxes reach the tracker's start threshold gets a warning
FEW_PASSING = 0.05


def threshold_notes(
    det_db: Mapping[str, np.ndarray], options: TrackOptions, tracks: MotTable, tracker=None
) -> list[str]:
    """What the tracker's thresholds left of the det_db, in words: how many boxes reach the score a ByteTrack
    track starts from, and a warning naming the option to lower when almost none do or no track came out."""
    scores = np.concatenate([np.asarray(v).reshape(-1, 5)[:, 4] for v in det_db.values()] or [np.zeros(0)])
    threshold = options.score_threshold  # as build_tracker: the request's field wins over the knob
    threshold = options.options.get("score_threshold") if threshold is None else threshold
    if threshold is None:
        threshold = BYTETRACK_DEFAULTS["score_threshold"] if options.tracker == "bytetrack" else MOTRV2_SCORE_THRESHOLD
    if options.tracker == "bytetrack":
        start = getattr(tracker, "start_threshold", threshold)
        passing = int((scores >= start).sum())
        notes = [f"{passing:,} of {len(scores):,} det_db boxes reach bytetrack's start threshold {start:g}"]
    else:  # MOTRv2's threshold applies to its own scores of the proposals, not to the detector's
        passing = len(scores)
        notes = [f"{len(scores):,} det_db proposals; motrv2's score_threshold {threshold:g}"]
    if not len(scores):
        return notes
    suggestion = max(0.05, np.floor(float(np.median(scores)) * 20) / 20)
    lower = f"lower score_threshold (CLI --score-threshold, now {threshold:g}), e.g. to {suggestion:g}"
    if len(tracks) == 0:
        notes.append(f"warning: no tracks from {len(scores):,} det_db boxes: {lower}")
    elif options.tracker == "bytetrack" and passing < FEW_PASSING * len(scores):
        notes.append(f"warning: only {passing / len(scores):.1%} of the det_db boxes can start a track: {lower}")
    return notes
