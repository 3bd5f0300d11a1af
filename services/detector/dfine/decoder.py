"""D-FINE's decoder (DFINETransformer) with the official names, in inference (deploy) behaviour:
query selection from the encoder memory, deformable cross attention with per-level point counts,
fine-grained distribution refinement of box edges, the localisation-quality head on the last layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = x.clip(min=0.0, max=1.0)
    return torch.log(x.clip(min=eps) / (1 - x).clip(min=eps))


class MLP(nn.Module):
    def __init__(self, cin, hidden, cout, layers):
        super().__init__()
        dims = [cin] + [hidden] * (layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [cout], strict=True))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return x


class MSDeformableAttention(nn.Module):
    """No value/output projections in D-FINE's version; points per level may differ."""

    def __init__(self, dim, heads, points: list[int]):
        super().__init__()
        self.heads, self.points = heads, list(points)
        self.register_buffer(
            "num_points_scale", torch.tensor([1 / n for n in points for _ in range(n)], dtype=torch.float32)
        )
        total = heads * sum(points)
        self.sampling_offsets = nn.Linear(dim, total * 2)
        self.attention_weights = nn.Linear(dim, total)

    def forward(self, query, reference, values, shapes):
        b, q = query.shape[:2]
        offsets = self.sampling_offsets(query).reshape(b, q, self.heads, sum(self.points), 2)
        weights = F.softmax(self.attention_weights(query).reshape(b, q, self.heads, sum(self.points)), dim=-1)
        scale = self.num_points_scale.to(dtype=query.dtype).unsqueeze(-1)
        locations = reference[:, :, None, :, :2] + offsets * scale * reference[:, :, None, :, 2:] * 0.5
        grids = (2 * locations - 1).permute(0, 2, 1, 3, 4).flatten(0, 1).split(self.points, dim=-2)
        c = values[0].shape[2]
        sampled = [
            F.grid_sample(values[level].reshape(b * self.heads, c, h, w), grids[level], mode="bilinear",
                          padding_mode="zeros", align_corners=False)
            for level, (h, w) in enumerate(shapes)
        ]  # fmt: skip
        weights = weights.permute(0, 2, 1, 3).reshape(b * self.heads, 1, q, sum(self.points))
        out = (torch.concat(sampled, dim=-1) * weights).sum(-1).reshape(b, self.heads * c, q)
        return out.permute(0, 2, 1)


class Gate(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gate = nn.Linear(2 * dim, 2 * dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x1, x2):
        g1, g2 = torch.sigmoid(self.gate(torch.cat([x1, x2], dim=-1))).chunk(2, dim=-1)
        return self.norm(g1 * x1 + g2 * x2)


class DecoderLayer(nn.Module):
    def __init__(self, dim, heads, ffn, points):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.0, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn = MSDeformableAttention(dim, heads, points)
        self.gateway = Gate(dim)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, target, reference, values, shapes, query_pos, attn_mask=None):
        q = k = target + query_pos
        target = self.norm1(target + self.self_attn(q, k, value=target, attn_mask=attn_mask)[0])
        target = self.gateway(target, self.cross_attn(target + query_pos, reference, values, shapes))
        return self.norm3(target + self.linear2(F.relu(self.linear1(target))))


class LQE(nn.Module):
    """Localisation quality: top-k edge-distribution statistics adjust the class scores."""

    def __init__(self, k, hidden, layers, reg_max):
        super().__init__()
        self.k, self.reg_max = k, reg_max
        self.reg_conf = MLP(4 * (k + 1), hidden, 1, layers)

    def forward(self, scores, corners):
        b, n, _ = corners.size()
        prob = F.softmax(corners.reshape(b, n, 4, self.reg_max + 1), dim=-1)
        top, _ = prob.topk(self.k, dim=-1)
        stat = torch.cat([top, top.mean(dim=-1, keepdim=True)], dim=-1)
        return scores + self.reg_conf(stat.reshape(b, n, -1))


class TransformerDecoder(nn.Module):
    def __init__(self, dim, heads, ffn, points, layers, reg_max, up: nn.Parameter, reg_scale: nn.Parameter):
        super().__init__()
        self.up, self.reg_scale = up, reg_scale  # the parent's parameters, also named here (as officially)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn, points) for _ in range(layers))
        self.lqe_layers = nn.ModuleList(LQE(4, 64, 2, reg_max) for _ in range(layers))


def weighting_function(reg_max: int, up: torch.Tensor, reg_scale: torch.Tensor) -> torch.Tensor:
    """FDR's non-uniform bin values, computed as the deployed model does (Python floats, then float32)."""
    bound1 = (abs(up[0]) * abs(reg_scale)).item()
    bound2 = (abs(up[0]) * abs(reg_scale) * 2).item()
    step = (bound1 + 1) ** (2 / (reg_max - 2))
    left = [-(step**i) + 1 for i in range(reg_max // 2 - 1, 0, -1)]
    right = [step**i - 1 for i in range(1, reg_max // 2)]
    return torch.tensor([-bound2, *left, 0.0, *right, bound2], dtype=up.dtype, device=up.device)


def distance2bbox(points, distance, reg_scale):
    reg_scale = abs(reg_scale)
    x1 = points[..., 0] - (0.5 * reg_scale + distance[..., 0]) * (points[..., 2] / reg_scale)
    y1 = points[..., 1] - (0.5 * reg_scale + distance[..., 1]) * (points[..., 3] / reg_scale)
    x2 = points[..., 0] + (0.5 * reg_scale + distance[..., 2]) * (points[..., 2] / reg_scale)
    y2 = points[..., 1] + (0.5 * reg_scale + distance[..., 3]) * (points[..., 3] / reg_scale)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)


class DFINETransformer(nn.Module):
    def __init__(self, num_classes, hidden_dim, num_queries, feat_channels, feat_strides, num_levels, num_points,
                 num_layers, dim_feedforward, reg_max, reg_scale, eval_spatial_size, nhead=8, eps=1e-2):  # fmt: skip
        super().__init__()
        self.num_classes, self.num_queries, self.reg_max, self.eps = num_classes, num_queries, reg_max, eps
        strides = list(feat_strides) + [feat_strides[-1] * 2 ** (i + 1) for i in range(num_levels - len(feat_strides))]
        self.feat_strides = strides
        self.input_proj = nn.ModuleList(
            nn.Identity() if c == hidden_dim else _proj(c, hidden_dim, 1, 1) for c in feat_channels
        )
        for _ in range(num_levels - len(feat_channels)):  # extra coarser levels (none in the released configs)
            self.input_proj.append(_proj(feat_channels[-1], hidden_dim, 3, 2))
        self.up = nn.Parameter(torch.tensor([0.5]), requires_grad=False)
        self.reg_scale = nn.Parameter(torch.tensor([reg_scale]), requires_grad=False)
        self.decoder = TransformerDecoder(hidden_dim, nhead, dim_feedforward, num_points, num_layers, reg_max,
                                          self.up, self.reg_scale)  # fmt: skip
        self.denoising_class_embed = nn.Embedding(num_classes + 1, hidden_dim, padding_idx=num_classes)
        self.query_pos_head = MLP(4, 2 * hidden_dim, hidden_dim, 2)
        self.enc_output = nn.Sequential()
        self.enc_output.add_module("proj", nn.Linear(hidden_dim, hidden_dim))
        self.enc_output.add_module("norm", nn.LayerNorm(hidden_dim))
        self.enc_score_head = nn.Linear(hidden_dim, num_classes)
        self.enc_bbox_head = MLP(hidden_dim, hidden_dim, 4, 3)
        self.dec_score_head = nn.ModuleList(nn.Linear(hidden_dim, num_classes) for _ in range(num_layers))
        self.pre_bbox_head = MLP(hidden_dim, hidden_dim, 4, 3)
        self.dec_bbox_head = nn.ModuleList(MLP(hidden_dim, hidden_dim, 4 * (reg_max + 1), 3) for _ in range(num_layers))
        anchors, valid = self.generate_anchors(eval_spatial_size)
        self.register_buffer("anchors", anchors)
        self.register_buffer("valid_mask", valid)

    def generate_anchors(self, size, grid=0.05):
        return self.anchors_for_shapes([(int(size[0] / s), int(size[1] / s)) for s in self.feat_strides], grid)

    def anchors_for_shapes(self, shapes, grid=0.05):
        """Logit-space (cx, cy, w, h) per feature cell, float32 (training regenerates them per input size);
        cells outside (eps, 1 - eps) are +inf and marked invalid."""
        anchors = []
        for level, (h, w) in enumerate(shapes):
            gy, gx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            xy = (torch.stack([gx, gy], dim=-1).unsqueeze(0) + 0.5) / torch.tensor([w, h], dtype=torch.float32)
            wh = torch.ones_like(xy) * grid * (2.0**level)
            anchors.append(torch.concat([xy, wh], dim=-1).reshape(-1, h * w, 4))
        anchors = torch.concat(anchors, dim=1)
        valid = ((anchors > self.eps) * (anchors < 1 - self.eps)).all(-1, keepdim=True)
        return torch.where(valid, torch.log(anchors / (1 - anchors)), torch.inf), valid

    def forward(self, feats):
        proj = [p(f) for p, f in zip(self.input_proj, feats, strict=False)]
        shapes = [tuple(f.shape[2:]) for f in proj]
        memory = torch.concat([f.flatten(2).permute(0, 2, 1) for f in proj], 1)
        b = memory.shape[0]
        memory_valid = self.valid_mask.to(memory.dtype) * memory
        out_memory = self.enc_output(memory_valid)
        logits = self.enc_score_head(out_memory)
        _, index = torch.topk(logits.max(-1).values, self.num_queries, dim=-1)
        anchors = self.anchors.repeat(b, 1, 1) if b > 1 else self.anchors
        top_anchors = anchors.gather(1, index.unsqueeze(-1).repeat(1, 1, 4))
        top_memory = out_memory.gather(1, index.unsqueeze(-1).repeat(1, 1, out_memory.shape[-1]))
        ref_unact = self.enc_bbox_head(top_memory) + top_anchors
        return self._decode(top_memory.detach(), ref_unact.detach(), memory, shapes)

    def _decode(self, target, ref_unact, memory, shapes):
        dec = self.decoder
        heads = dec.layers[0].cross_attn.heads
        values = memory.reshape(memory.shape[0], memory.shape[1], heads, -1).permute(0, 2, 3, 1)
        values = values.split([h * w for h, w in shapes], dim=-1)
        project = weighting_function(self.reg_max, self.up, self.reg_scale)
        ref = F.sigmoid(ref_unact)
        output_detach = corners_prev = 0
        last = len(dec.layers) - 1
        for i, layer in enumerate(dec.layers):
            target = layer(target, ref.unsqueeze(2), values, shapes, self.query_pos_head(ref))
            if i == 0:
                ref_initial = F.sigmoid(self.pre_bbox_head(target) + inverse_sigmoid(ref)).detach()
            corners = self.dec_bbox_head[i](target + output_detach) + corners_prev
            dist = F.linear(F.softmax(corners.reshape(-1, self.reg_max + 1), dim=1), project).reshape(-1, 4)
            boxes = distance2bbox(ref_initial, dist.reshape(list(corners.shape[:-1]) + [-1]), self.reg_scale)
            if i == last:
                scores = dec.lqe_layers[i](self.dec_score_head[i](target), corners)
                return scores, boxes
            corners_prev, ref, output_detach = corners, boxes.detach(), target.detach()
        raise AssertionError("unreachable")


def _proj(cin, dim, kernel, stride):
    proj = nn.Sequential()
    proj.add_module("conv", nn.Conv2d(cin, dim, kernel, stride, padding=(kernel - 1) // 2, bias=False))
    proj.add_module("norm", nn.BatchNorm2d(dim))
    return proj
