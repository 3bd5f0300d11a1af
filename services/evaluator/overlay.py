"""Overlay videos: ground truth, detections and tracks drawn on the frames, as browser-playable H.264.

Frames stream through one at a time (decode -> draw -> encode), so memory stays constant
for sequences of any length.
"""

from __future__ import annotations

import colorsys
import os
from collections import deque
from collections.abc import Callable

import cv2
import numpy as np

from shared.formats.mot_txt import MotTable
from shared.frames import open_frames, prefetch
from shared.video import VideoWriter

GT_COLOUR = (255, 0, 255)  # BGR magenta: stands out on sand and jerseys
TRAIL = 15  # frames of track history drawn as a trail


def score_colour(score: float) -> tuple[int, int, int]:
    """Green above 0.7, yellow above 0.5, orange below (BGR)."""
    if score > 0.7:
        return (0, 200, 0)
    if score > 0.5:
        return (0, 220, 255)
    return (0, 140, 255)


def id_colour(track_id: int) -> tuple[int, int, int]:
    """A stable, well-spread colour per id (golden-ratio hues)."""
    r, g, b = colorsys.hsv_to_rgb((track_id * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _rows_by_frame(table: MotTable | None) -> dict[int, np.ndarray]:
    if table is None or len(table) == 0:
        return {}
    order = np.argsort(table.frame, kind="stable")
    frames, starts = np.unique(table.frame[order], return_index=True)
    return {int(f): rows for f, rows in zip(frames, np.split(order, starts[1:]), strict=True)}


def _box(image, box, colour, thickness, label=None, below=False):
    x, y, w, h = (int(round(v)) for v in box)
    cv2.rectangle(image, (x, y), (x + w, y + h), colour, thickness)
    if label:  # track ids above the box, detection scores below it, so they never overlap
        at = (x, y + h + 14) if below else (x, max(12, y - 4))
        cv2.putText(image, label, at, cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)


def render_overlay(
    frames: str | os.PathLike,
    out: str | os.PathLike,
    gt: MotTable | None = None,
    detections: MotTable | None = None,
    tracks: MotTable | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> int:
    """Draw the given layers on every frame of `frames` into `out`; returns the frame count."""
    source = open_frames(frames)
    layers = {name: _rows_by_frame(t) for name, t in (("gt", gt), ("det", detections), ("trk", tracks))}
    trails: dict[int, deque] = {}
    written = 0
    with VideoWriter(out, source.fps, source.size) as writer:
        for number, image in prefetch(iter(source)):
            count = 0
            for i in layers["gt"].get(number, ()):
                _box(image, gt.boxes[i], GT_COLOUR, 3)
                count += 1
            for i in layers["det"].get(number, ()):
                score = float(detections.conf[i])
                _box(image, detections.boxes[i], score_colour(score), 2, f"{score:.2f}", below=True)
            for i in layers["trk"].get(number, ()):
                track_id = int(tracks.id[i])
                colour = id_colour(track_id)
                _box(image, tracks.boxes[i], colour, 2, f"id {track_id}")
                x, y, w, h = tracks.boxes[i]
                trail = trails.setdefault(track_id, deque(maxlen=TRAIL))
                trail.append((int(x + w / 2), int(y + h)))
                if len(trail) > 1:
                    cv2.polylines(image, [np.array(trail, np.int32)], False, colour, 2, cv2.LINE_AA)
            objects = count if gt is not None else len(layers["trk"].get(number, layers["det"].get(number, ())))
            cv2.putText(image, f"frame {number}  objects {objects}", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7,
                        (255, 255, 255), 2, cv2.LINE_AA)  # fmt: skip
            writer.write(image)
            written += 1
            if progress:
                progress(number, source.count)
    return written
