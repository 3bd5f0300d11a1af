"""`motrv2` behind the tracker interface: one frame and its det_db rows in, track rows out."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from shared.errors import InputError
from shared.schemas import MOTRV2_DEFAULTS

from .checkpoint import load_model
from .runtime import MOTRv2Runtime, ResizedFrame, proposals_from_rows, resize_frame, to_tensor

NAME = "motrv2"
# our option name -> runtime argument; defaults are the official inference script's
DEFAULTS = MOTRV2_DEFAULTS


class MOTRv2Tracker:
    name = NAME
    needs_frames = True

    def __init__(self, model, device: str, score_threshold: float = 0.5, **options):
        unknown = sorted(set(options) - set(DEFAULTS))
        if unknown:
            raise InputError(f"unknown motrv2 option(s) {unknown}; known: {sorted(DEFAULTS)}", field="options")
        opts = {**DEFAULTS, **options}
        self.device = device
        self.autocast = bool(opts["autocast"]) and device.startswith("cuda")
        self.runtime = MOTRv2Runtime(
            model,
            score_threshold=score_threshold,
            update_score_threshold=float(opts["update_score_threshold"]),
            miss_tolerance=int(opts["miss_tolerance"]),
            area_threshold=float(opts["area_threshold"]),
        )
        self.multi_class = model.cfg.num_classes > 1
        self.classes: dict[int, int] = {}  # track id -> its class for life

    def prepare_frame(self, frame: np.ndarray) -> ResizedFrame:
        """What the frame threads run ahead of the model: the resize (no torch involved)."""
        return resize_frame(frame)

    def update(self, dets: np.ndarray, frame: np.ndarray | ResizedFrame | None = None) -> np.ndarray:
        """(n, 5) l,t,w,h,score [+ class] -> (m, 7): id, left, top, width, height, score, class.

        The class (one per id, for its whole life): a multi-class checkpoint's head at the track's first
        frame (1-based: player 1, ball 2); for a 1-class checkpoint the class of the det_db proposal the track
        was born from when the det_db has classes; otherwise -1, as the official output says nothing of it."""
        if frame is None:
            raise InputError("motrv2 needs the frames (--frames VIDEO_OR_DIR)", field="frames")
        resized = frame if isinstance(frame, ResizedFrame) else resize_frame(frame)
        size = (resized.height, resized.width)
        image = to_tensor(resized.rgb, self.device)[None]
        context = torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        with context:
            tracks = self.runtime.step(image, proposals_from_rows(dets[:, :5], size), size)
        if not self.multi_class and dets.shape[1] > 5:
            learned = self.runtime.model.position.weight.shape[0]  # the queries before the proposals
            for track_id, query in self.runtime.born.items():
                if 0 <= query - learned < len(dets):
                    self.classes[track_id] = int(dets[query - learned, 5])
        rows = []
        for track_id, box, score, label in self.runtime.shown(tracks):
            if self.multi_class:
                self.classes.setdefault(track_id, label + 1)
            rows.append((track_id, *box, score, self.classes.get(track_id, -1)))
        return np.asarray(rows, dtype=np.float64).reshape(-1, 7)


def load_tracker_model(weights: str | os.PathLike, device: str):
    if not weights:
        raise InputError("motrv2 needs --weights CHECKPOINT", field="weights")
    return load_model(weights).to(device)
