"""MOTRv2's forward in training mode over one clip (the official `MOTR.forward` with the model in train mode).

Per frame: the learned queries and the frame's det_db proposals, followed by the tracks carried from the
previous frame, are decoded; the criterion assigns ids and adds the frame's loss terms; then the train-mode
QIMv2 selects what is carried on (instances with an id or a score above 0.5; ids of those whose IoU with
their object is <= 0.5 are reset, so they compete for new objects next frame) and updates the queries of
confident ones. The last frame is not passed to the QIM.

Options beyond the official behaviour, each off by default:
- `random_drop` / `fp_ratio`: the official QIMv2 stores them but never uses them; here they mean what they
  mean in MOTR — drop each carried track with that probability, and for each carried track with that
  probability add the unmatched instance overlapping it most as a false-positive track.
- `activation_checkpoint`: recompute each frame's activations during backward (the official
  `use_checkpoint`; the same numbers with less memory).
`ClipModel` is an `nn.Module` so that DistributedDataParallel wraps the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..model import MOTRv2
from .criterion import ClipCriterion, FrameTargets, LayerOutput, box_iou_pairs, cxcywh_to_xyxy


@dataclass
class Clip:
    """Frames of one training sample: images (3, H, W) normalised, ground truth, proposals (n, 5)."""

    images: list[torch.Tensor]
    targets: list[FrameTargets]
    proposals: list[torch.Tensor]  # normalised cx, cy, w, h, score
    source: str = ""  # e.g. "seq/img1/000012..000016", for messages

    def to(self, device) -> Clip:
        return Clip(
            [i.to(device) for i in self.images],
            [t.to(device) for t in self.targets],
            [p.to(device) for p in self.proposals],
            self.source,
        )


@dataclass
class ClipOptions:
    query_denoise: float = 0.05  # the official config's value; 0 = no denoise queries
    random_drop: float = 0.0
    fp_ratio: float = 0.0
    activation_checkpoint: bool = False


@dataclass
class _Instances:
    ref_pts: torch.Tensor
    query_pos: torch.Tensor
    obj_idxes: torch.Tensor
    iou: torch.Tensor

    def select(self, keep: torch.Tensor) -> _Instances:
        return _Instances(self.ref_pts[keep], self.query_pos[keep], self.obj_idxes[keep], self.iou[keep])

    @staticmethod
    def cat(a: _Instances, b: _Instances) -> _Instances:
        return _Instances(
            *(
                torch.cat([x, y])
                for x, y in zip(
                    (a.ref_pts, a.query_pos, a.obj_idxes, a.iou),
                    (b.ref_pts, b.query_pos, b.obj_idxes, b.iou),
                    strict=True,
                )
            )
        )


@dataclass
class FrameTrace:
    """What the criterion decided for a frame (for tests and debugging)."""

    obj_idxes: list[int]
    matched_gt_idxes: list[int]
    iou: list[float]
    scores: list[float]
    carried_obj_idxes: list[int] = field(default_factory=list)


class ClipModel(nn.Module):
    def __init__(self, model: MOTRv2, criterion: ClipCriterion, options: ClipOptions | None = None):
        super().__init__()
        self.model = model
        self.criterion = criterion
        self.options = options or ClipOptions()
        self.trace: list[FrameTrace] = []

    def _new_instances(self, proposals: torch.Tensor) -> _Instances:
        ref_pts, query_pos = self.model.proposal_queries(proposals)
        n = len(ref_pts)
        device = ref_pts.device
        return _Instances(
            ref_pts,
            query_pos,
            torch.full((n,), -1, dtype=torch.long, device=device),
            torch.ones(n, dtype=ref_pts.dtype, device=device),
        )

    def _denoise_boxes(self, targets: FrameTargets) -> torch.Tensor:
        """GT boxes with centre and size jittered by up to `query_denoise` of their size (official)."""
        q = self.options.query_denoise
        boxes = targets.boxes.clone()
        noise = torch.rand_like(boxes) * 2 - 1
        boxes[:, :2] += boxes[:, 2:] * noise[:, :2] * q
        boxes[:, 2:] *= 1 + q * noise[:, 2:]
        return boxes

    def _decode(self, image, ref_pts, query_pos, attn_mask):
        model = self.model

        def run(image, ref_pts, query_pos):
            hs, references = model.decode(image[None], ref_pts, query_pos, attn_mask)
            heads = [model.head(i, h, references[i]) for i, h in enumerate(hs)]
            return tuple(x for pair in heads for x in pair) + (hs[-1],)

        if self.options.activation_checkpoint and torch.is_grad_enabled():
            flat = checkpoint(run, image, ref_pts, query_pos, use_reentrant=False)
        else:
            flat = run(image, ref_pts, query_pos)
        outputs = [LayerOutput(flat[2 * i], flat[2 * i + 1]) for i in range((len(flat) - 1) // 2)]
        return outputs, flat[-1]

    def forward(self, clip: Clip) -> dict[str, torch.Tensor]:
        """Loss terms of the clip, already normalised (the official `criterion(outputs, data)`)."""
        self.criterion.reset()
        self.trace = []
        self.model.track_embed.score_thr = 0.5  # training threshold (the inference script changes it)
        tracks: _Instances | None = None
        last = len(clip.images) - 1
        for t, (image, targets, proposals) in enumerate(zip(clip.images, clip.targets, clip.proposals, strict=True)):
            inst = self._new_instances(proposals)
            if tracks is not None:
                inst = _Instances.cat(inst, tracks)
            n = len(inst.obj_idxes)
            ref_pts, query_pos, attn_mask = inst.ref_pts, inst.query_pos, None
            denoise = self.options.query_denoise > 0 and len(targets) > 0
            if denoise:
                ref_pts = torch.cat([ref_pts, self._denoise_boxes(targets)])
                query_pos = torch.cat([query_pos, self.model.refine_embed.weight.expand(len(targets), -1)])
                attn_mask = torch.zeros((len(ref_pts), len(ref_pts)), dtype=torch.bool, device=ref_pts.device)
                attn_mask[:n, n:] = True
            outputs, hs = self._decode(image, ref_pts, query_pos, attn_mask)
            denoised = [LayerOutput(o.logits[n:], o.boxes[n:]) for o in outputs] if denoise else None
            outputs = [LayerOutput(o.logits[:n], o.boxes[:n]) for o in outputs]
            final, hs = outputs[-1], hs[:n]
            with torch.no_grad():
                scores = final.logits.sigmoid().max(dim=-1).values
            ps = [denoised[-1], *denoised[:-1]] if denoised else None  # official order: final layer, then aux
            matched = self.criterion.match_frame(inst.obj_idxes, inst.iou, final, outputs[:-1], targets, ps)
            trace = FrameTrace(inst.obj_idxes.tolist(), matched.tolist(), inst.iou.tolist(), scores.tolist())
            self.trace.append(trace)
            if t < last:
                tracks = self._carry(inst, hs, scores, final.boxes)
                trace.carried_obj_idxes = tracks.obj_idxes.tolist()
        return self.criterion.normalised_losses()

    def _carry(self, inst: _Instances, hs, scores, boxes) -> _Instances:
        """Train-mode QIMv2: select the instances carried to the next frame and update their queries."""
        keep = (inst.obj_idxes >= 0) | (scores > 0.5)
        chosen = torch.nonzero(keep).flatten()
        if self.options.random_drop > 0 and len(chosen):
            chosen = chosen[torch.rand(len(chosen), device=chosen.device) > self.options.random_drop]
        if self.options.fp_ratio > 0 and len(chosen):
            chosen = torch.cat([chosen, self._false_positives(~keep, chosen, boxes)])
        active = inst.select(chosen)
        active.obj_idxes = torch.where(active.iou <= 0.5, -1, active.obj_idxes)
        ref_pts, query_pos = self.model.track_embed(
            active.ref_pts, active.query_pos, hs[chosen], scores[chosen], boxes[chosen]
        )
        return _Instances(ref_pts, query_pos, active.obj_idxes, active.iou)

    def _false_positives(self, inactive: torch.Tensor, chosen: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """MOTR's `_add_fp_tracks`: each carried track is drawn with probability fp_ratio; for each drawn one
        the inactive instance overlapping it most joins as an extra track (all of them if fewer)."""
        pool = torch.nonzero(inactive).flatten()
        drawn = chosen[torch.rand(len(chosen), device=chosen.device) < self.options.fp_ratio]
        if len(pool) == 0 or len(drawn) == 0:
            return pool[:0]
        if len(drawn) >= len(pool):
            return pool
        with torch.no_grad():
            iou, _ = box_iou_pairs(cxcywh_to_xyxy(boxes[pool]), cxcywh_to_xyxy(boxes[drawn]))
        return pool[torch.unique(iou.max(dim=0).indices)]
