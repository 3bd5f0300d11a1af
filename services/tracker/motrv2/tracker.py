"""`motrv2` behind the tracker interface: one frame and its det_db rows in, track rows out."""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from shared.errors import InputError

from .checkpoint import load_model
from .runtime import MOTRv2Runtime, preprocess, proposals_from_rows

NAME = "motrv2"
# our option name -> runtime argument; defaults are the official inference script's
DEFAULTS = {"update_score_threshold": 0.5, "miss_tolerance": 20, "area_threshold": 100.0, "autocast": False}


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

    def update(self, dets: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
        """(m, 7): id, left, top, width, height, score, label (1-based class: player 1, ball 2)."""
        if frame is None:
            raise InputError("motrv2 needs the frames (--frames VIDEO_OR_DIR)", field="frames")
        size = frame.shape[:2]
        image = preprocess(frame).to(self.device)
        context = torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        with context:
            tracks = self.runtime.step(image, proposals_from_rows(dets[:, :5], size), size)
        rows = [(tid, *box, score, label + 1) for tid, box, score, label in self.runtime.shown(tracks)]
        return np.asarray(rows, dtype=np.float64).reshape(-1, 7)


def load_tracker_model(weights: str | os.PathLike, device: str):
    if not weights:
        raise InputError("motrv2 needs --weights CHECKPOINT", field="weights")
    return load_model(weights).to(device)
