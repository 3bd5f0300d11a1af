"""The official MOTRv2 train-time augmentations, one function each, applied with one draw to every frame of
a clip. Frames are RGB uint8 arrays; boxes are (n, 4) x1, y1, x2, y2 pixels (ground truth and proposals in
one array, so both move identically); a transform that drops boxes returns the mask of those kept.

Official order (`make_transforms_for_mot17('train')`): horizontal flip p 0.5; with p 0.5 a random resize to
one of `scales` (longer side at most `max_size`), else resize to 800/1000/1200, a random crop of 800-1200 px
per side, and a random resize to `scales`; then HSV gains; then to tensor and ImageNet normalisation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import cv2
import numpy as np

Frames = list[np.ndarray]
Boxes = list[np.ndarray]


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    resize_crop: bool = True
    hsv: bool = True
    scales: tuple[int, ...] = tuple(range(608, 993, 32))
    max_size: int = 1536
    crop_resize: tuple[int, ...] = (800, 1000, 1200)
    crop_min: int = 800
    crop_max: int = 1200


def hflip(frames: Frames, boxes: Boxes) -> tuple[Frames, Boxes]:
    out_boxes = []
    for frame, b in zip(frames, boxes, strict=True):
        w = frame.shape[1]
        out_boxes.append(np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], 1) if len(b) else b)
    return [np.ascontiguousarray(f[:, ::-1]) for f in frames], out_boxes


def target_size(height: int, width: int, size: int, max_size: int | None) -> tuple[int, int]:
    """DETR's rule: shorter side `size`, unless the longer side would pass `max_size`."""
    if max_size is not None:
        short, long = float(min(height, width)), float(max(height, width))
        if long / short * size > max_size:
            size = int(round(max_size * short / long))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def resize(frames: Frames, boxes: Boxes, size: int, max_size: int | None) -> tuple[Frames, Boxes]:
    out_frames, out_boxes = [], []
    for frame, b in zip(frames, boxes, strict=True):
        h, w = frame.shape[:2]
        new_h, new_w = target_size(h, w, size, max_size)
        out_frames.append(cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR))
        out_boxes.append(b * np.array([new_w / w, new_h / h, new_w / w, new_h / h]))
    return out_frames, out_boxes


def crop(frames: Frames, boxes: Boxes, top: int, left: int, height: int, width: int):
    """Crop every frame; boxes are clipped to the crop and those left with no area dropped."""
    out_frames, out_boxes, keeps = [], [], []
    for frame, b in zip(frames, boxes, strict=True):
        out_frames.append(frame[top : top + height, left : left + width])
        moved = b - np.array([left, top, left, top])
        moved = np.minimum(moved.reshape(-1, 2, 2), np.array([width, height]))
        moved = np.maximum(moved, 0).reshape(-1, 4)
        keep = (moved[:, 2] > moved[:, 0]) & (moved[:, 3] > moved[:, 1])
        out_boxes.append(moved[keep])
        keeps.append(keep)
    return out_frames, out_boxes, keeps


def hsv_gains(frames: Frames, gains: np.ndarray) -> Frames:
    """Add integer gains to H (mod 180), S and V (clipped), as MOTHSV does."""
    out = []
    for frame in frames:
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
        hsv[..., 1:] = np.clip(hsv[..., 1:] + gains[1:], 0, 255)
        out.append(cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB))
    return out


def augment(frames: Frames, boxes: Boxes, cfg: AugmentConfig, rng: random.Random, np_rng: np.random.Generator):
    """One random draw applied to the whole clip -> (frames, boxes, keep masks into the input boxes)."""
    keeps = [np.ones(len(b), dtype=bool) for b in boxes]
    if cfg.flip and rng.random() < 0.5:
        frames, boxes = hflip(frames, boxes)
    if cfg.resize_crop:
        if rng.random() < 0.5:
            frames, boxes = resize(frames, boxes, rng.choice(cfg.scales), cfg.max_size)
        else:
            frames, boxes = resize(frames, boxes, rng.choice(cfg.crop_resize), None)
            h, w = frames[0].shape[:2]
            crop_w = rng.randint(min(cfg.crop_min, w), min(w, cfg.crop_max))
            crop_h = rng.randint(min(cfg.crop_min, h), min(h, cfg.crop_max))
            top, left = rng.randint(0, h - crop_h), rng.randint(0, w - crop_w)
            frames, boxes, crop_keeps = crop(frames, boxes, top, left, crop_h, crop_w)
            keeps = [k.copy() for k in keeps]
            for keep, kept in zip(keeps, crop_keeps, strict=True):
                keep[keep] = kept
            frames, boxes = resize(frames, boxes, rng.choice(cfg.scales), cfg.max_size)
    if cfg.hsv:
        gains = np_rng.uniform(-1, 1, 3) * np.array([5, 30, 30]) * np_rng.integers(0, 2, 3)
        frames = hsv_gains(frames, gains.astype(np.int16))
    return frames, boxes, keeps
