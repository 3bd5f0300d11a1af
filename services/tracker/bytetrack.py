"""`bytetrack`: the weights-free baseline tracker, from Roboflow's `trackers` package.

We take ByteTrack from `trackers` (a maintained, tested, clean-room reimplementation with a
Kalman filter and two-stage IoU association, Apache-2.0) rather than writing our own: the
baseline only has to be a well-known reference point, and ByteTrack works on det_db boxes
alone, needing no image features.
"""

from __future__ import annotations

import numpy as np

from shared.errors import InputError

NAME = "bytetrack"
# our option name -> ByteTrackTracker argument
_OPTIONS = {
    "score_threshold": "track_activation_threshold",
    "high_score_threshold": "high_conf_det_threshold",
    "lost_track_buffer": "lost_track_buffer",
    "minimum_iou": "minimum_iou_threshold",
    "minimum_consecutive_frames": "minimum_consecutive_frames",
    "frame_rate": "frame_rate",
}
DEFAULTS = {
    "score_threshold": 0.5,
    "high_score_threshold": 0.5,
    "lost_track_buffer": 30,
    "minimum_consecutive_frames": 1,
}


class ByteTrack:
    name = NAME

    def __init__(self, **options):
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise InputError(f"unknown bytetrack option(s) {unknown}; known: {sorted(_OPTIONS)}", field="options")
        from trackers import ByteTrackTracker

        merged = {**DEFAULTS, **options}
        self._tracker = ByteTrackTracker(**{_OPTIONS[k]: v for k, v in merged.items()})
        self._ids: dict[int, int] = {}

    def update(self, dets: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        """(n, 5+) l,t,w,h,score -> (m, 6) id,l,t,w,h,score for confirmed tracks; ids start at 1."""
        import supervision as sv

        boxes = dets[:, :4].copy()
        boxes[:, 2:] += boxes[:, :2]
        detections = sv.Detections(
            xyxy=boxes.reshape(-1, 4), confidence=dets[:, 4].copy(), class_id=np.zeros(len(dets), int)
        )
        tracked = self._tracker.update(detections)
        keep = tracked.tracker_id >= 0
        out = np.zeros((int(keep.sum()), 6))
        if len(out):
            xyxy = tracked.xyxy[keep]
            out[:, 0] = [self._ids.setdefault(int(t), len(self._ids) + 1) for t in tracked.tracker_id[keep]]
            out[:, 1:3] = xyxy[:, :2]
            out[:, 3:5] = xyxy[:, 2:] - xyxy[:, :2]
            out[:, 5] = tracked.confidence[keep]
        return out
