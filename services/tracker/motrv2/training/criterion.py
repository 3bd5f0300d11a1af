"""The official MOTRv2 training criterion (`ClipMatcher`): per-frame matching and every loss term.

Per frame: instances that carry an object id keep it (and are matched to that object's ground truth, or to
nothing when it left); the rest are matched to the untracked ground truth by the Hungarian matcher (cost
5 L1 + 2 focal class + 2 (-GIoU)); every decoder layer's output gets the focal class loss over all instances
and the L1 / GIoU box losses over the matched pairs, each aux layer with its own matching. Terms are named
as the official criterion names them (`frame_0_loss_ce`, `frame_2_aux4_loss_giou`, `frame_1_ps0_loss_bbox`)
and divided by the clip's ground-truth count (mean over processes under DDP).

Two deliberate differences from the official code, both documented in the training spec:
- a zero-union box pair has IoU 0 (the official `matched_boxlist_iou` divides 0 by 0);
- a track whose object left the frame is trained as background for any class count (the official target
  `1` is background only with one class; with player+ball it trains the track as a ball).
  `official_disappeared_label=True` reproduces the official target, for parity checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

LOSS_WEIGHTS = {"loss_ce": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}


@dataclass(frozen=True)
class MatcherCosts:
    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0


@dataclass
class FrameTargets:
    """Ground truth of one frame: boxes normalised (cx, cy, w, h), class indices, object ids."""

    boxes: torch.Tensor
    labels: torch.Tensor
    obj_ids: torch.Tensor

    def to(self, device) -> FrameTargets:
        return FrameTargets(self.boxes.to(device), self.labels.to(device), self.obj_ids.to(device))

    def __len__(self) -> int:
        return len(self.labels)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num / den where den > 0, else 0 (no NaN, no NaN gradient either)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and union of xyxy boxes a[i] with b[j] for all pairs: (N, M) each. Zero union -> IoU 0."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return _safe_divide(inter, union), union


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU of xyxy boxes, all pairs (N, M); an empty enclosing box contributes 0 instead of 0/0."""
    iou, union = box_iou_pairs(a, b)
    lt = torch.min(a[:, None, :2], b[None, :, :2])
    rb = torch.max(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - _safe_divide(enclosing - union, enclosing)


def matched_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of a[i] with b[i] (xyxy), 0 where the union is empty."""
    lt = torch.max(a[:, :2], b[:, :2])
    rb = torch.min(a[:, 2:], b[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    return _safe_divide(inter, _area(a) + _area(b) - inter)


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Summed sigmoid focal loss (RetinaNet), as Deformable DETR computes it."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * loss).sum()


@torch.no_grad()
def hungarian_match(logits, boxes, targets: FrameTargets, costs: MatcherCosts) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimal (slot index, target index) pairs between predictions (N, C)/(N, 4) and targets."""
    device = logits.device
    if len(logits) == 0 or len(targets) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16 under autocast: numpy has no bf16
    logits, boxes = logits.to(dtype), boxes.to(dtype)
    prob = logits.sigmoid()
    alpha, gamma = costs.focal_alpha, costs.focal_gamma
    neg = (1 - alpha) * (prob**gamma) * (-(1 - prob + 1e-8).log())
    pos = alpha * ((1 - prob) ** gamma) * (-(prob + 1e-8).log())
    cost_class = pos[:, targets.labels] - neg[:, targets.labels]
    target_boxes = targets.boxes.to(dtype)
    cost_bbox = torch.cdist(boxes, target_boxes, p=1)
    cost_giou = -generalized_box_iou(cxcywh_to_xyxy(boxes), cxcywh_to_xyxy(target_boxes))
    cost = costs.cost_bbox * cost_bbox + costs.cost_class * cost_class + costs.cost_giou * cost_giou
    rows, cols = linear_sum_assignment(cost.cpu().numpy())
    return torch.as_tensor(rows, dtype=torch.long, device=device), torch.as_tensor(
        cols, dtype=torch.long, device=device
    )


@dataclass
class LayerOutput:
    logits: torch.Tensor  # (N, C)
    boxes: torch.Tensor  # (N, 4) normalised cx, cy, w, h


class ClipCriterion:
    """Matches instances to ground truth frame by frame and accumulates the official loss terms."""

    def __init__(
        self,
        num_classes: int,
        costs: MatcherCosts | None = None,
        official_disappeared_label: bool = False,
    ):
        self.num_classes = num_classes
        self.costs = costs or MatcherCosts()
        self.official_disappeared_label = official_disappeared_label
        self.reset()

    def reset(self) -> None:
        self.losses: dict[str, torch.Tensor] = {}
        self.num_samples = 0
        self.frame = 0

    # -- loss terms -----------------------------------------------------------------------------------
    def loss_labels(self, logits, targets: FrameTargets, src, tgt) -> torch.Tensor:
        target_classes = torch.full((len(logits),), self.num_classes, dtype=torch.long, device=logits.device)
        labels = torch.full_like(tgt, 1 if self.official_disappeared_label else self.num_classes)
        seen = tgt != -1
        if len(targets):
            labels[seen] = targets.labels[tgt[seen]]
        target_classes[src] = labels
        onehot = F.one_hot(target_classes, self.num_classes + 1)[:, :-1].to(logits)
        return sigmoid_focal_loss(logits, onehot, self.costs.focal_alpha, self.costs.focal_gamma)

    def loss_boxes(self, boxes, targets: FrameTargets, src, tgt) -> tuple[torch.Tensor, torch.Tensor]:
        keep = tgt != -1
        src, tgt = src[keep], tgt[keep]
        keep = targets.obj_ids[tgt] != -1  # padding targets carry id -1
        pred, gt = boxes[src[keep]], targets.boxes[tgt[keep]]
        l1 = F.l1_loss(pred, gt, reduction="none").sum()
        giou = torch.diagonal(generalized_box_iou(cxcywh_to_xyxy(pred), cxcywh_to_xyxy(gt)))
        return l1, (1 - giou).sum()

    def _add(self, prefix: str, out: LayerOutput, targets: FrameTargets, src, tgt, labels: bool = True) -> None:
        if labels:
            self.losses[f"{prefix}_loss_ce"] = self.loss_labels(out.logits, targets, src, tgt)
        self.losses[f"{prefix}_loss_bbox"], self.losses[f"{prefix}_loss_giou"] = self.loss_boxes(
            out.boxes, targets, src, tgt
        )

    # -- matching -------------------------------------------------------------------------------------
    def match_frame(
        self,
        obj_idxes: torch.Tensor,
        iou: torch.Tensor,
        final: LayerOutput,
        aux: list[LayerOutput],
        targets: FrameTargets,
        denoise: list[LayerOutput] | None = None,
    ) -> torch.Tensor:
        """Assign ids for this frame (updates `obj_idxes` and `iou` in place), add the frame's loss terms;
        returns matched ground-truth index per instance (-1 none)."""
        device = obj_idxes.device
        n = len(obj_idxes)
        matched = torch.full((n,), -1, dtype=torch.long, device=device)
        i, j = torch.where(obj_idxes[:, None] == targets.obj_ids[None, :])
        matched[i] = j
        everyone = torch.arange(n, device=device)
        carried = obj_idxes >= 0
        prev_pairs = (everyone[carried], matched[carried])
        unmatched = everyone[obj_idxes == -1]
        claimed = torch.zeros(len(targets), dtype=torch.bool, device=device)
        claimed[matched[matched != -1]] = True
        untracked = torch.arange(len(targets), device=device)[~claimed]
        free_targets = FrameTargets(targets.boxes[untracked], targets.labels[untracked], targets.obj_ids[untracked])

        def pairs_for(out: LayerOutput) -> tuple[torch.Tensor, torch.Tensor]:
            rows, cols = hungarian_match(out.logits[unmatched], out.boxes[unmatched], free_targets, self.costs)
            return unmatched[rows], untracked[cols]

        new_src, new_tgt = pairs_for(final)
        obj_idxes[new_src] = targets.obj_ids[new_tgt].long()
        matched[new_src] = new_tgt
        active = (obj_idxes >= 0) & (matched >= 0)
        if active.any():
            with torch.no_grad():
                pred = cxcywh_to_xyxy(final.boxes[active])
                iou[active] = matched_iou(pred, cxcywh_to_xyxy(targets.boxes[matched[active]])).to(iou.dtype)

        self.num_samples += len(targets)
        t = self.frame
        self._add(
            f"frame_{t}", final, targets, torch.cat([new_src, prev_pairs[0]]), torch.cat([new_tgt, prev_pairs[1]])
        )
        for layer, out in enumerate(aux):
            src, tgt = pairs_for(out)
            self._add(
                f"frame_{t}_aux{layer}", out, targets, torch.cat([src, prev_pairs[0]]), torch.cat([tgt, prev_pairs[1]])
            )
        for layer, out in enumerate(denoise or []):
            ar = torch.arange(len(targets), device=device)
            self._add(f"frame_{t}_ps{layer}", out, targets, ar, ar, labels=False)
        self.frame += 1
        return matched

    def normalised_losses(self) -> dict[str, torch.Tensor]:
        """Every term divided by the clip's ground-truth count (averaged over processes), at least 1."""
        count = torch.as_tensor(float(self.num_samples))
        if dist.is_available() and dist.is_initialized():
            device = next(iter(self.losses.values())).device if self.losses else "cpu"
            count = count.to(device)
            dist.all_reduce(count)
            count = count / dist.get_world_size()
        divisor = max(float(count), 1.0)
        return {name: value / divisor for name, value in self.losses.items()}


def weighted_total(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ weight · term over the official weight dict (ce 2, bbox 5, giou 2 for main, aux and ps terms)."""
    return sum(LOSS_WEIGHTS[name[name.index("loss_") :]] * value for name, value in losses.items())
