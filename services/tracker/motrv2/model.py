"""The MOTRv2 module tree, named as the official `MOTR` so checkpoints load with strict=True."""

from __future__ import annotations

import torch
from torch import nn

from .backbone import Backbone, Joiner
from .config import MOTRv2Config
from .layers import MLP, DeformableTransformer, QueryInteractionModuleV2
from .position import image_position_embedding, inverse_sigmoid, pos2posemb


class MOTRv2(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_dim
        self.track_embed = QueryInteractionModuleV2(cfg)
        self.transformer = DeformableTransformer(cfg)
        num_pred = cfg.dec_layers  # with box refinement, no two-stage: one head per decoder layer
        self.class_embed = nn.ModuleList(nn.Linear(d, cfg.num_classes) for _ in range(num_pred))
        self.bbox_embed = nn.ModuleList(MLP([d, d, d, 4]) for _ in range(num_pred))
        self.transformer.decoder.bbox_embed = self.bbox_embed  # the same tensors under both names
        self.position = nn.Embedding(cfg.num_queries, 4)  # reference points of the learned queries
        self.yolox_embed = nn.Embedding(1, d)  # added to proposal queries
        self.query_embed = nn.Embedding(cfg.num_queries, d)
        self.refine_embed = nn.Embedding(1, d)
        levels = []
        for channels in cfg.backbone_channels:
            levels.append(nn.Sequential(nn.Conv2d(channels, d, kernel_size=1), nn.GroupNorm(32, d)))
        for _ in range(cfg.num_feature_levels - len(cfg.backbone_channels)):
            levels.append(
                nn.Sequential(nn.Conv2d(channels, d, kernel_size=3, stride=2, padding=1), nn.GroupNorm(32, d))
            )
            channels = d
        self.input_proj = nn.ModuleList(levels)
        self.backbone = Joiner(Backbone(), nn.Identity())

    def proposal_queries(self, proposals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference boxes and query embeddings of the learned queries followed by the det_db proposals
        (proposals: (n, 5) normalised cx, cy, w, h, score)."""
        ref_pts = torch.cat([self.position.weight, proposals[:, :4]])
        score_embedding = pos2posemb(proposals[:, 4:], self.cfg.hidden_dim) + self.yolox_embed.weight
        return ref_pts, torch.cat([self.query_embed.weight, score_embedding])

    def decode(self, image: torch.Tensor, ref_pts: torch.Tensor, query_pos: torch.Tensor, attn_mask=None):
        """Backbone, encoder and decoder for one frame: (every decoder layer's output (Q, C) each,
        the reference boxes each layer started from)."""
        features = self.backbone[0](image)
        srcs = [proj(f) for proj, f in zip(self.input_proj, features, strict=False)]
        extra = features[-1]
        for level in range(len(features), self.cfg.num_feature_levels):
            extra = self.input_proj[level](extra)
            srcs.append(extra)
        pos = [image_position_embedding(torch.zeros((1, *s.shape[-2:]), dtype=torch.bool, device=s.device)).to(s.dtype)
               for s in srcs]  # fmt: skip
        hs, references = self.transformer(srcs, pos, query_pos, ref_pts, attn_mask)
        return [h[0] for h in hs], [r[0] for r in references]

    def head(self, layer: int, hs: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits and refined boxes (cx, cy, w, h) of one decoder layer's output."""
        return self.class_embed[layer](hs), (self.bbox_embed[layer](hs) + inverse_sigmoid(reference)).sigmoid()

    def forward(self, image: torch.Tensor, ref_pts: torch.Tensor, query_pos: torch.Tensor):
        """One frame (1, 3, H, W) normalised -> (pred_logits (Q, classes), pred_boxes (Q, 4), hs (Q, C))."""
        hs, references = self.decode(image, ref_pts, query_pos)
        logits, boxes = self.head(len(hs) - 1, hs[-1], references[-2])
        return logits, boxes, hs[-1]
