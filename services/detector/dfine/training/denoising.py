"""Contrastive denoising groups (TRAINING_SPEC §2): noised copies of the ground truth fed to the decoder in
front of the 300 matching queries, positives to be reconstructed and negatives to be rejected.

The random draws come from torch's global generator in the official order (label flip mask, new labels,
box-noise signs, magnitudes) and in float32 (the official code builds these tensors in the default dtype
whatever the model's dtype), so a seeded run reproduces the official groups exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..decoder import inverse_sigmoid


@dataclass
class DenoisingGroups:
    labels: torch.Tensor  # (B, Nd) int, the (noised) class of each denoising query; num_classes = padding
    boxes_unact: torch.Tensor  # (B, Nd, 4) float32 logit-space noised boxes
    attn_mask: torch.Tensor  # (Nd + Q, Nd + Q) bool, True = may not attend
    positive_idx: list[torch.Tensor]  # per image: the positive query of every GT in every group
    num_group: int
    num_queries: int  # Nd


def _xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def _cxcywh(b: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = b.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1)


def make_groups(
    targets: list[dict],
    num_classes: int,
    num_queries: int,
    num_denoising: int = 100,
    label_noise_ratio: float = 0.5,
    box_noise_scale: float = 1.0,  # the official decoder passes 1.0 whatever the yml says
) -> DenoisingGroups | None:
    """None when no image of the batch has a ground-truth box (nothing to denoise)."""
    counts = [len(t["labels"]) for t in targets]
    max_gt = max(counts) if counts else 0
    if num_denoising <= 0 or max_gt == 0:
        return None
    groups = max(num_denoising // max_gt, 1)
    b = len(counts)
    labels = torch.full([b, max_gt], num_classes, dtype=torch.int32)
    boxes = torch.zeros([b, max_gt, 4], dtype=torch.float32)
    real = torch.zeros([b, max_gt], dtype=torch.bool)
    for i, n in enumerate(counts):
        if n:
            labels[i, :n] = targets[i]["labels"].cpu().to(torch.int32)
            boxes[i, :n] = targets[i]["boxes"].detach().cpu().to(torch.float32)
            real[i, :n] = True
    labels, boxes, real = labels.tile([1, 2 * groups]), boxes.tile([1, 2 * groups, 1]), real.tile([1, 2 * groups])
    negative = torch.zeros([b, max_gt * 2, 1])
    negative[:, max_gt:] = 1
    negative = negative.tile([1, groups, 1])
    positive = (1 - negative).squeeze(-1) * real
    positive_idx = list(torch.nonzero(positive)[:, 1].split([n * groups for n in counts]))
    total = max_gt * 2 * groups

    if label_noise_ratio > 0:
        flip = torch.rand(labels.shape, dtype=torch.float32) < label_noise_ratio * 0.5
        new = torch.randint(0, num_classes, flip.shape, dtype=labels.dtype)
        labels = torch.where(flip & real, new, labels)
    if box_noise_scale > 0:
        xyxy = _xyxy(boxes)
        half = torch.tile(boxes[..., 2:] * 0.5, [1, 1, 2]) * box_noise_scale
        sign = torch.randint(0, 2, boxes.shape, dtype=boxes.dtype) * 2.0 - 1.0
        part = torch.rand(boxes.shape, dtype=boxes.dtype)
        part = (part + 1.0) * negative + part * (1 - negative)
        xyxy = torch.clip(xyxy + sign * part * half, min=0.0, max=1.0)
        boxes = _cxcywh(xyxy)
        boxes[boxes < 0] *= -1
    unact = inverse_sigmoid(boxes)

    size = total + num_queries
    mask = torch.zeros([size, size], dtype=torch.bool)
    mask[total:, :total] = True  # matching queries cannot see the denoising ones
    span = max_gt * 2
    for g in range(groups):  # each group sees only itself
        mask[span * g : span * (g + 1), span * (g + 1) : total] = True
        mask[span * g : span * (g + 1), : span * g] = True
    return DenoisingGroups(labels.long(), unact, mask, positive_idx, groups, total)
