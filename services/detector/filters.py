"""Output filters shared by every detector: score, class, region of interest, minimum area."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.schemas import DetectOptions


@dataclass
class FilterStats:
    """How many detections each filter dropped (reported with the det_db)."""

    raw: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"score": 0, "class": 0, "roi": 0, "area": 0})
    kept: int = 0


class DetectionFilter:
    def __init__(self, options: DetectOptions, class_ids: set[int] | None):
        self.score_threshold = options.score_threshold
        self.class_ids = class_ids
        self.polygon = None
        if options.roi:  # matplotlib only when a court area is given (its import: ~0.15 s of every detect)
            from matplotlib.path import Path as PolygonPath

            self.polygon = PolygonPath(options.roi.polygon)
        self.min_area = options.min_area
        self.stats = FilterStats()

    def __call__(self, dets: np.ndarray) -> np.ndarray:
        """Keep rows of (n, 6) l,t,w,h,score,label that pass every filter."""
        self.stats.raw += len(dets)
        steps = [
            ("score", lambda d: d[:, 4] >= self.score_threshold),
            (
                "class",
                lambda d: np.isin(d[:, 5], list(self.class_ids)) if self.class_ids is not None else None,
            ),
            (
                "roi",
                lambda d: self.polygon.contains_points(d[:, :2] + d[:, 2:4] / 2) if self.polygon else None,
            ),
            ("area", lambda d: d[:, 2] * d[:, 3] >= self.min_area if self.min_area else None),
        ]
        for name, test in steps:
            if len(dets) == 0:
                break
            keep = test(dets)
            if keep is None:
                continue
            self.stats.dropped[name] += int(len(dets) - np.count_nonzero(keep))
            dets = dets[keep]
        self.stats.kept += len(dets)
        return dets
