"""The official per-frame MOTRv2 loop: proposals + carried tracks -> model -> ids -> QIMv2 -> MOT lines.

Track life cycle (RuntimeTrackerBase): a query scoring >= score_threshold resets its miss count;
an unassigned one gets the next id; a tracked one scoring < filter_threshold counts a miss and
loses its id after `miss_tolerance` misses. Tracks with an id are carried to the next frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .model import MOTRv2

MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])


@dataclass(frozen=True)
class ResizedFrame:
    """A frame at the model's input size, still uint8 RGB (what a frame thread prepares ahead of the model)."""

    rgb: np.ndarray
    height: int  # of the original frame
    width: int


def resize_frame(frame_bgr: np.ndarray, short: int = 800, long: int = 1536) -> ResizedFrame:
    """The official resize rule (shorter side 800, longer at most 1536), RGB."""
    rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    scale = short / min(h, w)
    if max(h, w) * scale > long:
        scale = long / max(h, w)
    return ResizedFrame(cv2.resize(rgb, (int(w * scale), int(h * scale))), h, w)


def preprocess(frame_bgr: np.ndarray, short: int = 800, long: int = 1536) -> torch.Tensor:
    """The official resize rule, RGB, ImageNet normalisation: the model's (1, 3, H, W) input."""
    return to_tensor(resize_frame(frame_bgr, short, long).rgb)[None]


def to_tensor(rgb: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W) / 255, ImageNet-normalised (torchvision's arithmetic), made on
    `device` (the uint8 pixels travel, a quarter of the floats' bytes; each step is one IEEE operation, so a
    GPU gives the CPU's bits); the training pipeline uses the same function."""
    tensor = torch.from_numpy(np.ascontiguousarray(rgb)).to(device, non_blocking=True).permute(2, 0, 1).float().div(255)
    mean, std = _mean_std(tensor.device)
    return (tensor - mean) / std


@functools.lru_cache(maxsize=4)
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet's mean and std as (3, 1, 1) on `device`, copied there once, not with every frame."""
    return MEAN.to(device)[:, None, None], STD.to(device)[:, None, None]


def proposals_from_rows(rows: np.ndarray, frame_size: tuple[int, int]) -> torch.Tensor:
    """det_db rows (l, t, w, h, score) in pixels -> (n, 5) normalised cx, cy, w, h, score."""
    height, width = frame_size
    out = [[(x + w / 2) / width, (y + h / 2) / height, w / width, h / height, s] for x, y, w, h, s in rows.tolist()]
    return torch.as_tensor(out, dtype=torch.float32).reshape(-1, 5)


@dataclass
class FrameTracks:
    """The track instances returned for a frame (those carried to the next one)."""

    obj_idxes: torch.Tensor
    disappear_time: torch.Tensor
    scores: torch.Tensor
    pred_logits: torch.Tensor
    pred_boxes: torch.Tensor  # normalised cx, cy, w, h
    boxes_xyxy: torch.Tensor  # original pixels


class MOTRv2Runtime:
    def __init__(
        self,
        model: MOTRv2,
        score_threshold: float = 0.5,
        filter_score_threshold: float | None = None,
        update_score_threshold: float = 0.5,
        miss_tolerance: int = 20,
        area_threshold: float = 100.0,
    ):
        self.model = model
        self.score_threshold = score_threshold
        self.filter_score_threshold = score_threshold if filter_score_threshold is None else filter_score_threshold
        self.miss_tolerance = miss_tolerance
        self.area_threshold = area_threshold
        model.track_embed.score_thr = update_score_threshold
        self.reset()

    def reset(self) -> None:
        self.max_obj_id = 0
        self.born: dict[int, int] = {}  # ids given in the last step -> the query they were given to
        self.carried: tuple[torch.Tensor, ...] | None = None  # ref_pts, query_pos, obj_idxes, disappear_time

    @torch.inference_mode()
    def step(self, image: torch.Tensor, proposals: torch.Tensor, frame_size: tuple[int, int]) -> FrameTracks:
        device = self.model.query_embed.weight.device
        ref_pts, query_pos = self.model.proposal_queries(proposals.to(device))
        obj = torch.full((len(ref_pts),), -1, dtype=torch.long, device=device)
        missed = torch.zeros_like(obj)
        if self.carried is not None:
            ref_pts, query_pos, obj, missed = (torch.cat([a, b]) for a, b in zip((ref_pts, query_pos, obj, missed),
                                                                                self.carried, strict=True))  # fmt: skip
        logits, boxes, hs = self.model(image.to(device), ref_pts, query_pos)
        scores = logits[:, 0].sigmoid()
        missed[scores >= self.score_threshold] = 0
        new = (obj == -1) & (scores >= self.score_threshold)
        count = int(new.sum())
        obj[new] = self.max_obj_id + torch.arange(count, device=device)
        self.max_obj_id += count
        self.born = dict(zip(obj[new].tolist(), torch.nonzero(new).flatten().tolist(), strict=True))
        disappeared = (obj >= 0) & (scores < self.filter_score_threshold)
        missed[disappeared] += 1
        obj[disappeared & (missed >= self.miss_tolerance)] = -1
        keep = obj >= 0
        new_ref, new_query = self.model.track_embed(ref_pts[keep], query_pos[keep], hs[keep], scores[keep], boxes[keep])
        self.carried = (new_ref, new_query, obj[keep], missed[keep])
        height, width = frame_size
        cx, cy, w, h = boxes[keep].unbind(-1)
        xyxy = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)
        xyxy = xyxy * torch.tensor([width, height, width, height], dtype=xyxy.dtype, device=device)[None]
        return FrameTracks(obj[keep], missed[keep], scores[keep], logits[keep], boxes[keep], xyxy)

    def shown(self, tracks: FrameTracks) -> list[tuple[int, list[float], float, int]]:
        """(id, [x1, y1, w, h], score, label) of the tracks written out for this frame: score above the
        threshold, an id, area above the area threshold (the inference script's filters)."""
        out = []
        labels = tracks.pred_logits.argmax(-1).tolist()
        rows = zip(tracks.boxes_xyxy.tolist(), tracks.obj_idxes.tolist(), tracks.scores.tolist(), labels, strict=True)
        for (x1, y1, x2, y2), track_id, score, label in rows:
            w, h = x2 - x1, y2 - y1
            if score > self.score_threshold and track_id >= 0 and w * h > self.area_threshold:
                out.append((track_id, [x1, y1, w, h], score, label))
        return out

    def lines(self, frame: int, tracks: FrameTracks) -> list[str]:
        """The official script's MOT lines (`frame,id,x1,y1,w,h,1,-1,-1,-1`)."""
        return [
            f"{frame},{track_id},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,-1,-1,-1\n"
            for track_id, (x, y, w, h), _, _ in self.shown(tracks)
        ]
