"""Building blocks with the official names: multi-scale deformable attention, encoder and decoder
layers, the box MLP and QIMv2 (the query interaction module)."""

from __future__ import annotations

from torch import nn

from .config import MOTRv2Config


class MSDeformAttn(nn.Module):
    def __init__(self, dim: int, levels: int, heads: int, points: int):
        super().__init__()
        self.levels, self.heads, self.points = levels, heads, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)


class EncoderLayer(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        d = cfg.hidden_dim
        self.self_attn = MSDeformAttn(d, cfg.num_feature_levels, cfg.nheads, cfg.enc_n_points)
        self.norm1 = nn.LayerNorm(d)
        self.linear1 = nn.Linear(d, cfg.dim_feedforward)
        self.linear2 = nn.Linear(cfg.dim_feedforward, d)
        self.norm2 = nn.LayerNorm(d)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        d = cfg.hidden_dim
        self.cross_attn = MSDeformAttn(d, cfg.num_feature_levels, cfg.nheads, cfg.dec_n_points)
        self.norm1 = nn.LayerNorm(d)
        self.self_attn = nn.MultiheadAttention(d, cfg.nheads)
        self.norm2 = nn.LayerNorm(d)
        self.linear1 = nn.Linear(d, cfg.dim_feedforward)
        self.linear2 = nn.Linear(cfg.dim_feedforward, d)
        self.norm3 = nn.LayerNorm(d)


class MLP(nn.Module):
    """`layers.0..N-1`: Linear layers with ReLU between them."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))


class Encoder(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))


class Decoder(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        self.bbox_embed: nn.ModuleList | None = None  # shared with the model's bbox_embed (box refinement)


class DeformableTransformer(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        import torch

        self.level_embed = nn.Parameter(torch.zeros(cfg.num_feature_levels, cfg.hidden_dim))
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)


class QueryInteractionModuleV2(nn.Module):
    """QIMv2: updates the queries of tracks carried to the next frame (`track_embed.*`)."""

    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        d, ff = cfg.hidden_dim, cfg.dim_feedforward
        self.self_attn = nn.MultiheadAttention(d, cfg.nheads)
        self.linear1 = nn.Linear(d, ff)
        self.linear2 = nn.Linear(ff, d)
        self.linear_feat1 = nn.Linear(d, ff)
        self.linear_feat2 = nn.Linear(ff, d)
        self.norm_feat = nn.LayerNorm(d)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
