"""The MOTRv2 module tree, named as the official `MOTR` so checkpoints load with strict=True."""

from __future__ import annotations

from torch import nn

from .backbone import Backbone, Joiner
from .config import MOTRv2Config
from .layers import MLP, DeformableTransformer, QueryInteractionModuleV2


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
