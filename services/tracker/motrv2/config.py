"""MOTRv2's architecture settings (the released `configs/motrv2.args` and inference defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MOTRv2Config:
    num_classes: int = 1  # 1 official (dance), 2 the group's player+ball, 8 their volleyball set
    num_queries: int = 10
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 1024
    num_feature_levels: int = 4
    enc_n_points: int = 4
    dec_n_points: int = 4
    backbone_channels: tuple[int, ...] = (512, 1024, 2048)  # ResNet-50 layer2..4
