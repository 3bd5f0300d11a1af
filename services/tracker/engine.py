"""Turn a det_db into MOT tracks with a named tracker (pure core: no FastAPI, no Celery)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from shared.errors import InputError
from shared.formats.det_db import det_db_key, parse_key, resolve_sequence
from shared.formats.mot_txt import MotTable
from shared.schemas import TrackOptions

from .bytetrack import ByteTrack

AVAILABLE = ("bytetrack",)
ProgressFn = Callable[[int, int | None], None]


def build_tracker(options: TrackOptions):
    if options.tracker == "bytetrack":
        extra = dict(options.options)
        if options.score_threshold is not None:
            extra["score_threshold"] = options.score_threshold
        return ByteTrack(**extra)
    raise InputError(f"unknown tracker {options.tracker!r}; available: {', '.join(AVAILABLE)}", field="tracker")


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
    return keys


def run_tracking(
    det_db: Mapping[str, np.ndarray],
    options: TrackOptions,
    sequence: str | None = None,
    num_frames: int | None = None,
    progress: ProgressFn | None = None,
    source: str = "det_db",
) -> MotTable:
    sequence = resolve_sequence(det_db, sequence, source)
    keys = frame_keys(det_db, sequence, num_frames, source)
    tracker = build_tracker(options)
    rows = []
    for number, key in enumerate(keys, start=1):
        tracks = tracker.update(np.asarray(det_db[key]).reshape(-1, 5))
        if len(tracks):
            n = len(tracks)
            rows.append(np.column_stack([np.full(n, number), tracks, np.full(n, -1), np.full((n, 2), -1)]))
        if progress:
            progress(number, len(keys))
    return MotTable.from_matrix(np.concatenate(rows) if rows else np.zeros((0, 10)))
