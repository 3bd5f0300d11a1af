"""`motion`: a weights-free detector for fixed cameras.

Background subtraction against a per-pixel median of frames sampled across the whole
clip (a median model works from frame 1, unlike a running model such as MOG2 that needs
warm-up frames and absorbs players who stand still for a moment), then morphology and
connected components give one box per moving blob. Score = the share of the box that
is foreground, so solid blobs score high and ragged noise low. Label 2 (ball) for small,
near-square blobs, else 1 (player), matching the synthetic scenes' classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import cv2
import numpy as np

from shared.frames import FrameSource

NAME = "motion"


class MotionDetector:
    name = NAME

    def __init__(self, diff_threshold: int = 25, min_area: int = 40, samples: int = 31, ball_max_side: int = 24):
        self.diff_threshold = diff_threshold
        self.min_area = min_area
        self.samples = samples
        self.ball_max_side = ball_max_side
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
        self.background: np.ndarray | None = None
        self.notes: list[str] = []

    def prepare(self, source: FrameSource) -> None:
        """Median background of up to `samples` frames spread over the clip (one decode pass)."""
        step = max(1, source.count // self.samples)
        picked = [image for number, image in source if (number - 1) % step == 0]
        if not picked:
            raise ValueError(f"{source.description}: no frames to build a background from")
        self.background = np.median(np.stack(picked[: self.samples * 2]), axis=0).astype(np.int16)
        if len(picked) < 3:
            why = "its background is made of those frames, so nothing moves against it and (almost) nothing is found"
            self.notes = [f"the motion detector saw {len(picked)} frame(s): {why}; use a longer clip or dfine"]

    def detect_one(self, image: np.ndarray) -> np.ndarray:
        """(n, 6) float array: left, top, width, height, score, label."""
        if self.background is None:
            raise RuntimeError("call prepare() first")
        diff = np.abs(image.astype(np.int16) - self.background).max(axis=2).astype(np.uint8)
        mask = (diff > self.diff_threshold).astype(np.uint8)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        rows = []
        for x, y, w, h, area in stats[1:count]:
            if area < self.min_area:
                continue
            fill = area / float(w * h)
            small_square = max(w, h) <= self.ball_max_side and 0.6 <= w / h <= 1.6
            rows.append((x, y, w, h, min(1.0, fill), 2 if small_square else 1))
        return np.asarray(rows, dtype=np.float64).reshape(-1, 6)

    def detect(self, frames: Iterable[tuple[int, np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
        for number, image in frames:
            yield number, self.detect_one(image)
