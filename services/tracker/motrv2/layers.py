"""Building blocks with the official names: multi-scale deformable attention, encoder and decoder
layers, the box MLP and QIMv2 (the query interaction module)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import MOTRv2Config
from .position import inverse_sigmoid, pos2posemb


class MSDeformAttn(nn.Module):
    def __init__(self, dim: int, levels: int, heads: int, points: int):
        super().__init__()
        self.levels, self.heads, self.points = levels, heads, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 2)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, query, reference_points, value_in, shapes: list[tuple[int, int]]):
        """query (B, Q, C); reference_points (B, Q, L, 2 or 4) normalised; value_in (B, sum HW, C)."""
        b, q, c = query.shape
        heads, levels, points = self.heads, self.levels, self.points
        value = self.value_proj(value_in).view(b, -1, heads, c // heads)
        offsets = self.sampling_offsets(query).view(b, q, heads, levels, points, 2)
        weights = F.softmax(self.attention_weights(query).view(b, q, heads, levels * points), -1)
        weights = weights.view(b, q, heads, levels, points)
        if reference_points.shape[-1] == 2:
            normaliser = torch.tensor([[w, h] for h, w in shapes], dtype=query.dtype, device=query.device)
            locations = reference_points[:, :, None, :, None, :] + offsets / normaliser[None, None, None, :, None, :]
        else:
            locations = (
                reference_points[:, :, None, :, None, :2]
                + offsets / points * reference_points[:, :, None, :, None, 2:] * 0.5
            )
        return self.output_proj(_deformable_sampling(value, shapes, locations, weights))


try:  # the compiled sampling for CPU inference (setup.py builds it; without a compiler the PyTorch path runs)
    from . import _msda
except ImportError:  # pragma: no cover - depends on the build
    _msda = None


def _compiled_sampling(value, shapes, locations, weights):
    """The same sampling through `_msda.c` (CPU, float32, no gradient): value read as (pixels, heads, channels)."""
    b, n, heads, d = value.shape
    _, q, _, levels, points, _ = locations.shape
    sizes = torch.tensor(shapes, dtype=torch.int64)
    starts = torch.cat([torch.zeros(1, dtype=torch.int64), (sizes[:, 0] * sizes[:, 1]).cumsum(0)[:-1]])
    out = torch.empty(b, q, heads * d, dtype=torch.float32)
    for i in range(b):
        _msda.sample(value[i].contiguous().numpy(), sizes.numpy(), starts.numpy(), locations[i].contiguous().numpy(),
                     weights[i].contiguous().numpy(), out[i].numpy(), heads, d, levels, points)  # fmt: skip
    return out


def _deformable_sampling(value, shapes, locations, weights):
    """Multi-scale deformable attention in plain PyTorch (bilinear grid_sample, zero padding); at CPU inference
    in float32 the compiled kernel does the same, several times faster."""
    if (_msda is not None and not torch.is_grad_enabled() and value.device.type == "cpu"
            and value.dtype == torch.float32 and locations.dtype == torch.float32):  # fmt: skip
        return _compiled_sampling(value, shapes, locations, weights)
    b, _, heads, d = value.shape
    _, q, _, levels, points, _ = locations.shape
    per_level = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * locations - 1
    sampled = []
    for level, (h, w) in enumerate(shapes):
        v = per_level[level].flatten(2).transpose(1, 2).reshape(b * heads, d, h, w)
        g = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False))
    weights = weights.transpose(1, 2).reshape(b * heads, 1, q, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1).view(b, heads * d, q)
    return out.transpose(1, 2).contiguous()


class EncoderLayer(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        d = cfg.hidden_dim
        self.self_attn = MSDeformAttn(d, cfg.num_feature_levels, cfg.nheads, cfg.enc_n_points)
        self.norm1 = nn.LayerNorm(d)
        self.linear1 = nn.Linear(d, cfg.dim_feedforward)
        self.linear2 = nn.Linear(cfg.dim_feedforward, d)
        self.norm2 = nn.LayerNorm(d)

    def forward(self, src, pos, reference_points, shapes):
        src = self.norm1(src + self.self_attn(src + pos, reference_points, src, shapes))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


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

    def forward(self, tgt, query_pos, reference_points, memory, shapes, attn_mask=None):
        """Self attention, then deformable cross attention, then the feed-forward (MOTR's self-cross order).
        `attn_mask` (Q, Q) bool, True = may not attend (training: normal queries never see denoise queries)."""
        q = k = tgt + query_pos
        attended = self.self_attn(q.transpose(0, 1), k.transpose(0, 1), tgt.transpose(0, 1), attn_mask=attn_mask)
        attended = attended[0].transpose(0, 1)
        tgt = self.norm2(tgt + attended)
        tgt = self.norm1(tgt + self.cross_attn(tgt + query_pos, reference_points, memory, shapes))
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MLP(nn.Module):
    """`layers.0..N-1`: Linear layers with ReLU between them."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.enc_layers))

    @staticmethod
    def reference_points(shapes, device) -> torch.Tensor:
        """Pixel centres of every level, normalised: (1, sum HW, L, 2) (no padding: valid ratios are 1)."""
        points = []
        for h, w in shapes:
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device),
                torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device),
                indexing="ij",
            )
            points.append(torch.stack((ref_x.reshape(-1)[None] / w, ref_y.reshape(-1)[None] / h), -1))
        return torch.cat(points, 1)[:, :, None].expand(-1, -1, len(shapes), -1)

    def forward(self, src, pos, shapes):
        reference = self.reference_points(shapes, src.device)
        for layer in self.layers:
            src = layer(src, pos, reference, shapes)
        return src


class Decoder(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        self.bbox_embed: nn.ModuleList | None = None  # shared with the model's bbox_embed (box refinement)

    def forward(self, tgt, reference, memory, shapes, attn_mask=None):
        """Returns every layer's output and the reference boxes each layer started from (plus the last one)."""
        outputs, references = [], [reference]
        for lid, layer in enumerate(self.layers):
            query_pos = pos2posemb(reference)
            points = reference[:, :, None].expand(-1, -1, len(shapes), -1)
            tgt = layer(tgt, query_pos, points, memory, shapes, attn_mask)
            reference = (self.bbox_embed[lid](tgt) + inverse_sigmoid(reference)).sigmoid().detach()
            outputs.append(tgt)
            references.append(reference)
        return outputs, references


class DeformableTransformer(nn.Module):
    def __init__(self, cfg: MOTRv2Config):
        super().__init__()
        self.level_embed = nn.Parameter(torch.zeros(cfg.num_feature_levels, cfg.hidden_dim))
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, srcs, pos_embeds, query, reference, attn_mask=None):
        shapes = [tuple(s.shape[-2:]) for s in srcs]
        flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pos = torch.cat(
            [p.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1) for lvl, p in enumerate(pos_embeds)], 1
        )
        memory = self.encoder(flat, pos, shapes)
        return self.decoder(query[None], reference[None], memory, shapes, attn_mask)


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
        self.score_thr = 0.5  # the inference script sets it to --update_score_threshold

    def forward(self, ref_pts, query_pos, output_embedding, scores, pred_boxes):
        """New (ref_pts, query_pos) for the tracks carried to the next frame (QIMv2, no query-pos update)."""
        is_pos = scores > self.score_thr
        ref_pts = torch.where(is_pos[:, None], pred_boxes.detach(), ref_pts)
        q = k = pos2posemb(ref_pts) + output_embedding
        tgt = output_embedding
        tgt = self.norm1(tgt + self.self_attn(q[:, None], k[:, None], value=tgt[:, None])[0][:, 0])
        tgt = self.norm2(tgt + self.linear2(F.relu(self.linear1(tgt))))
        feat = self.norm_feat(query_pos + self.linear_feat2(F.relu(self.linear_feat1(tgt))))
        return ref_pts, torch.where(is_pos[:, None], feat, query_pos)
