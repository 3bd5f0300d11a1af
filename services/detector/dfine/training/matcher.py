"""Hungarian matching (TRAINING_SPEC §3) and the union ("go") matching over all outputs.

Box helpers are ours rather than torchvision's so each value is computed by the same arithmetic as the
official `box_ops` (the parity target is 1e-7 relative in float64).
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment

Matching = list[tuple[torch.Tensor, torch.Tensor]]  # per image: (query indices, gt indices)


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and union of a[i] with b[i] (xyxy)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.min(a[:, 2:], b[:, 2:]) - torch.max(a[:, :2], b[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    union = area_a + area_b - inter
    return inter / union, union


def giou_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    iou, union = box_iou_pairs(a, b)
    wh = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).clamp(min=0)
    area = wh[:, 0] * wh[:, 1]
    return iou - (area - union) / area


def giou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    wh = (torch.min(a[:, None, 2:], b[:, 2:]) - torch.max(a[:, None, :2], b[:, :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b - inter
    iou = inter / union
    wh = (torch.max(a[:, None, 2:], b[:, 2:]) - torch.min(a[:, None, :2], b[:, :2])).clamp(min=0)
    area = wh[..., 0] * wh[..., 1]
    return iou - (area - union) / area


class HungarianMatcher:
    def __init__(
        self,
        cost_class: float = 2.0,
        cost_bbox: float = 5.0,
        cost_giou: float = 2.0,
        alpha: float = 0.25,
        gamma: float = 2.0,
    ):
        self.cost_class, self.cost_bbox, self.cost_giou = cost_class, cost_bbox, cost_giou
        self.alpha, self.gamma = alpha, gamma

    @torch.no_grad()
    def __call__(self, outputs: dict, targets: list[dict]) -> Matching:
        b, q = outputs["pred_logits"].shape[:2]
        empty = torch.zeros(0, dtype=torch.int64)
        sizes = [len(t["boxes"]) for t in targets]
        if sum(sizes) == 0:
            return [(empty, empty) for _ in targets]
        prob = torch.sigmoid(outputs["pred_logits"].flatten(0, 1))
        boxes = outputs["pred_boxes"].flatten(0, 1)
        ids = torch.cat([t["labels"] for t in targets])
        gt = torch.cat([t["boxes"] for t in targets])
        prob = prob[:, ids]
        neg = (1 - self.alpha) * (prob**self.gamma) * (-(1 - prob + 1e-8).log())
        pos = self.alpha * ((1 - prob) ** self.gamma) * (-(prob + 1e-8).log())
        cost = (
            self.cost_bbox * torch.cdist(boxes, gt, p=1)
            + self.cost_class * (pos - neg)
            + self.cost_giou * -giou_matrix(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(gt))
        )
        cost = torch.nan_to_num(cost.view(b, q, -1).cpu(), nan=1.0)
        out = []
        for i, c in enumerate(cost.split(sizes, -1)):
            rows, cols = linear_sum_assignment(c[i].numpy())
            out.append((torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(cols, dtype=torch.int64)))
        return out


def union_matching(main: Matching, others: list[Matching]) -> Matching:
    """Per image, the (query, gt) pairs of every matching; each query keeps the gt it is paired with most often
    (ties: the lexicographically smaller pair, as the official stable sort of `torch.unique` rows leaves them)."""
    result = []
    for i, (rows, cols) in enumerate(main):
        rows = torch.cat([rows] + [m[i][0] for m in others])
        cols = torch.cat([cols] + [m[i][1] for m in others])
        pairs = torch.stack([rows, cols], 1)
        unique, counts = torch.unique(pairs, return_counts=True, dim=0)
        order = torch.argsort(counts, descending=True, stable=True)
        chosen: dict[int, int] = {}
        for query, gt in unique[order].tolist():
            chosen.setdefault(query, gt)
        result.append(
            (torch.tensor(list(chosen), dtype=torch.int64), torch.tensor(list(chosen.values()), dtype=torch.int64))
        )
    return result
