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

from shared.contrast import black_text_on
from shared.formats.mot_txt import MotTable, rows_by_frame
from shared.frames import open_frames, prefetch
from shared.video import VideoWriter

GT_COLOUR = (255, 0, 255)  # BGR magenta: stands out on sand and jerseys
HALO = (0, 0, 0)  # a dark edge under every coloured line: light colours stay visible on sand or a pale floor
TRAIL = 15  # frames of track history drawn as a trail
FONT = cv2.FONT_HERSHEY_SIMPLEX


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


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever contrasts more with the BGR `background` (WCAG contrast ratio)."""
    b, g, r = background
    return (0, 0, 0) if black_text_on((r / 255, g / 255, b / 255)) else (255, 255, 255)


def label(image, text: str, at: tuple[int, int], colour, scale: float = 0.45) -> None:
    """`text` on a filled tag of `colour` whose top-left corner is `at`, in black or white for contrast."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    x = min(max(0, at[0]), image.shape[1] - w - 4)
    y = min(max(0, at[1]), image.shape[0] - h - base - 4)
    cv2.rectangle(image, (x, y), (x + w + 4, y + h + base + 4), colour, cv2.FILLED)
    cv2.putText(image, text, (x + 2, y + h + 2), FONT, scale, text_colour(colour), 1, cv2.LINE_AA)


def _box(image, box, colour, thickness, tag=None, below=False):
    x, y, w, h = (int(round(v)) for v in box)
    cv2.rectangle(image, (x, y), (x + w, y + h), HALO, thickness + 2)
    cv2.rectangle(image, (x, y), (x + w, y + h), colour, thickness)
    if tag:  # track ids above the box, detection scores below it, so they never overlap
        label(image, tag, (x, y + h + 2) if below else (x, y - 20), colour)


def _legend(image, layers: list[str]) -> None:
    """What each colour means, top right, for the layers this video draws."""
    entries = []
    if "gt" in layers:
        entries.append((GT_COLOUR, "ground truth"))
    if "det" in layers:
        entries += [(score_colour(0.8), "detection > 0.7"), (score_colour(0.6), "detection > 0.5"),
                    (score_colour(0.3), "detection <= 0.5")]  # fmt: skip
    if "trk" in layers:
        entries.append((id_colour(1), "track (colour = id)"))
    width = max(cv2.getTextSize(text, FONT, 0.45, 1)[0][0] for _, text in entries) + 34
    x0, y0 = image.shape[1] - width - 8, 8
    panel = image[y0 : y0 + 20 * len(entries) + 8, x0 : x0 + width]
    panel[:] = (panel * 0.35).astype(image.dtype)  # darkened, not opaque: the scene stays visible beneath
    for row, (colour, text) in enumerate(entries):
        y = y0 + 8 + 20 * row
        cv2.rectangle(image, (x0 + 6, y), (x0 + 22, y + 12), colour, cv2.FILLED)
        cv2.putText(image, text, (x0 + 28, y + 11), FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)


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
    layers = {name: rows_by_frame(t) for name, t in (("gt", gt), ("det", detections), ("trk", tracks))}
    present = [name for name, table in (("gt", gt), ("det", detections), ("trk", tracks)) if table is not None]
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
                    points = [np.array(trail, np.int32)]
                    cv2.polylines(image, points, False, HALO, 4, cv2.LINE_AA)
                    cv2.polylines(image, points, False, colour, 2, cv2.LINE_AA)
            objects = count if gt is not None else len(layers["trk"].get(number, layers["det"].get(number, ())))
            label(image, f"frame {number}  objects {objects}", (8, 8), (32, 32, 32), scale=0.7)
            _legend(image, present)
            writer.write(image)
            written += 1
            if progress:
                progress(number, source.count)
    return written
