"""`bytetrack`: the weights-free baseline tracker, from Roboflow's `trackers` package.

We take ByteTrack from `trackers` (a maintained, tested, clean-room reimplementation with a
Kalman filter and two-stage IoU association, Apache-2.0) rather than writing our own: the
baseline only has to be a well-known reference point, and ByteTrack works on det_db boxes
alone, needing no image features.

With classes (a det_db's sidecar), each class is tracked by a ByteTrack of its own, so a ball is never
associated with a player's track; every track keeps the class it was born with, written in the MOT class
column, and ids stay unique across classes.
"""

from __future__ import annotations

import numpy as np

from shared.errors import InputError
from shared.schemas import BYTETRACK_DEFAULTS

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
DEFAULTS = BYTETRACK_DEFAULTS


class ByteTrack:
    name = NAME

    def __init__(self, **options):
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise InputError(f"unknown bytetrack option(s) {unknown}; known: {sorted(_OPTIONS)}", field="options")
        merged = {**DEFAULTS, **options}
        if "high_score_threshold" not in options:  # a lowered score threshold lowers the first association's
            merged["high_score_threshold"] = min(merged["high_score_threshold"], merged["score_threshold"])
        # a detection starts a track only when it passes both (ByteTrack spawns from high-score leftovers)
        self.start_threshold = max(merged["score_threshold"], merged["high_score_threshold"])
        self._arguments = {_OPTIONS[k]: v for k, v in merged.items()}
        self._trackers: dict[int, object] = {}  # class (-1: unknown) -> its ByteTrackTracker
        self._ids: dict[tuple[int, int], int] = {}  # (class, the class tracker's id) -> our id

    def update(self, dets: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        """(n, 5) l,t,w,h,score or (n, 6) with the class -> (m, 7) id,l,t,w,h,score,class for confirmed tracks
        (class -1 without classes); ids start at 1."""
        labels = dets[:, 5].astype(int) if dets.shape[1] > 5 else np.full(len(dets), -1)
        for label in np.unique(labels):
            self._tracker(int(label))
        rows = [self._update_class(label, tracker, dets[labels == label]) for label, tracker in self._trackers.items()]
        return np.concatenate(rows) if rows else np.zeros((0, 7))

    def _tracker(self, label: int):
        if label not in self._trackers:
            from trackers import ByteTrackTracker

            self._trackers[label] = ByteTrackTracker(**self._arguments)
        return self._trackers[label]

    def _update_class(self, label: int, tracker, dets: np.ndarray) -> np.ndarray:
        """Every class's tracker sees every frame (an empty one ages its tracks)."""
        import supervision as sv

        boxes = dets[:, :4].copy()
        boxes[:, 2:] += boxes[:, :2]
        detections = sv.Detections(
            xyxy=boxes.reshape(-1, 4), confidence=dets[:, 4].copy(), class_id=np.zeros(len(dets), int)
        )
        tracked = tracker.update(detections)
        keep = tracked.tracker_id >= 0
        out = np.zeros((int(keep.sum()), 7))
        if len(out):
            xyxy = tracked.xyxy[keep]
            ids = [(label, int(t)) for t in tracked.tracker_id[keep]]
            out[:, 0] = [self._ids.setdefault(key, len(self._ids) + 1) for key in ids]
            out[:, 1:3] = xyxy[:, :2]
            out[:, 3:5] = xyxy[:, 2:] - xyxy[:, :2]
            out[:, 5] = tracked.confidence[keep]
            out[:, 6] = label
        return out
