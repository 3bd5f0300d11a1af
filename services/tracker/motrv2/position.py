"""Sine position embeddings: of feature-map positions (images) and of boxes/scores (queries)."""

from __future__ import annotations

import math

import torch


def image_position_embedding(mask: torch.Tensor, num_feats: int = 128, temperature: float = 10000.0) -> torch.Tensor:
    """(B, 2*num_feats, H, W) from a padding mask (B, H, W); normalised, half-pixel centred (Deformable DETR)."""
    not_mask = ~mask
    y = not_mask.cumsum(1, dtype=torch.float32)
    x = not_mask.cumsum(2, dtype=torch.float32)
    eps, scale = 1e-6, 2 * math.pi
    y = (y - 0.5) / (y[:, -1:, :] + eps) * scale
    x = (x - 0.5) / (x[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=mask.device)
    dim_t = temperature ** (2 * dim_t.div(2, rounding_mode="trunc") / num_feats)
    pos_x = x[:, :, :, None] / dim_t
    pos_y = y[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def pos2posemb(pos: torch.Tensor, num_feats: int = 64, temperature: float = 10000.0) -> torch.Tensor:
    """Sine embedding of each value in the last dim: (..., k) -> (..., k * num_feats)."""
    pos = pos * (2 * math.pi)
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=pos.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_feats)
    emb = pos[..., None] / dim_t
    return torch.stack((emb[..., 0::2].sin(), emb[..., 1::2].cos()), dim=-1).flatten(-3)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))
