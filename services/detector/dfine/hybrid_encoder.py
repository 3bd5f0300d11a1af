"""D-FINE's hybrid encoder with the official module names: per-level projection, a transformer
encoder layer (AIFI) on the coarsest level(s), then a top-down FPN and bottom-up PAN built from
RepNCSPELAN4 blocks, with SCDown downsampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvNorm(nn.Module):
    """`conv` + `norm` (batch norm) + optional activation; the official ConvNormLayer(_fuse)."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1, act: nn.Module | None = None):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.act = act or nn.Identity()

    def forward(self, x):
        if hasattr(self, "conv_bn_fused"):
            return self.act(self.conv_bn_fused(x))
        return self.act(self.norm(self.conv(x)))

    def fused_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch norm folded into the convolution, with the official arithmetic (same rounding)."""
        std = (self.norm.running_var + self.norm.eps).sqrt()
        t = (self.norm.weight / std).reshape(-1, 1, 1, 1)
        return self.conv.weight * t, self.norm.bias - self.norm.running_mean * self.norm.weight / std

    def deploy(self) -> None:
        """What the official `convert_to_deploy` does: one biased convolution instead of conv + norm."""
        conv = self.conv
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          groups=conv.groups, bias=True)  # fmt: skip
        kernel, bias = self.fused_kernel_bias()
        fused.weight.data, fused.bias.data = kernel.detach(), bias.detach()
        self.conv_bn_fused = fused
        del self.conv, self.norm


class VGGBlock(nn.Module):
    """3x3 and 1x1 branches summed, then SiLU (deploy mode fuses them; the sum is the same function)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = ConvNorm(cin, cout, 3)
        self.conv2 = ConvNorm(cin, cout, 1)
        self.act = nn.SiLU()

    def forward(self, x):
        if hasattr(self, "conv"):
            return self.act(self.conv(x))
        return self.act(self.conv1(x) + self.conv2(x))

    def deploy(self) -> None:
        """Both branches folded into one 3x3 convolution, as the official deploy mode does."""
        k3, b3 = self.conv1.fused_kernel_bias()
        k1, b1 = self.conv2.fused_kernel_bias()
        conv = nn.Conv2d(self.conv1.conv.in_channels, self.conv1.conv.out_channels, 3, 1, padding=1)
        conv.weight.data, conv.bias.data = (k3 + F.pad(k1, [1, 1, 1, 1])).detach(), (b3 + b1).detach()
        self.conv = conv
        del self.conv1, self.conv2


class CSPLayer(nn.Module):
    def __init__(self, cin, cout, blocks):
        super().__init__()
        self.conv1 = ConvNorm(cin, cout, 1, act=nn.SiLU())
        self.conv2 = ConvNorm(cin, cout, 1, act=nn.SiLU())
        self.bottlenecks = nn.Sequential(*(VGGBlock(cout, cout) for _ in range(blocks)))
        self.conv3 = nn.Identity()  # expansion 1.0: hidden == out channels

    def forward(self, x):
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))


class RepNCSPELAN4(nn.Module):
    def __init__(self, c1, c2, c3, c4, blocks):
        super().__init__()
        self.half = c3 // 2
        self.cv1 = ConvNorm(c1, c3, 1, act=nn.SiLU())
        self.cv2 = nn.Sequential(CSPLayer(c3 // 2, c4, blocks), ConvNorm(c4, c4, 3, act=nn.SiLU()))
        self.cv3 = nn.Sequential(CSPLayer(c4, c4, blocks), ConvNorm(c4, c4, 3, act=nn.SiLU()))
        self.cv4 = ConvNorm(c3 + 2 * c4, c2, 1, act=nn.SiLU())

    def forward(self, x):
        parts = list(self.cv1(x).split((self.half, self.half), 1))
        parts.extend(m(parts[-1]) for m in (self.cv2, self.cv3))
        return self.cv4(torch.cat(parts, 1))


class SCDown(nn.Module):
    def __init__(self, cin, cout, kernel, stride):
        super().__init__()
        self.cv1 = ConvNorm(cin, cout, 1)
        self.cv2 = ConvNorm(cout, cout, kernel, stride, groups=cout)

    def forward(self, x):
        return self.cv2(self.cv1(x))


class EncoderLayer(nn.Module):
    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, 0.0, batch_first=True)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, src, pos):
        q = k = src + pos
        src = self.norm1(src + self.self_attn(q, k, value=src)[0])
        return self.norm2(src + self.linear2(F.gelu(self.linear1(src))))


class TransformerEncoder(nn.Module):
    def __init__(self, dim, heads, ffn, layers):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ffn) for _ in range(layers))

    def forward(self, src, pos):
        for layer in self.layers:
            src = layer(src, pos)
        return src


def sincos_2d(w: int, h: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    grid_w, grid_h = torch.meshgrid(
        torch.arange(w, dtype=torch.float32), torch.arange(h, dtype=torch.float32), indexing="ij"
    )
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    out_w = grid_w.flatten()[..., None] @ omega[None]
    out_h = grid_h.flatten()[..., None] @ omega[None]
    return torch.concat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1)[None]


class HybridEncoder(nn.Module):
    def __init__(self, in_channels, hidden_dim, use_encoder_idx, num_encoder_layers, nhead, dim_feedforward,
                 expansion, depth_mult):  # fmt: skip
        super().__init__()
        self.hidden_dim = hidden_dim
        self.use_encoder_idx = list(use_encoder_idx)
        self.input_proj = nn.ModuleList(_proj(c, hidden_dim) for c in in_channels)
        self.encoder = nn.ModuleList(
            TransformerEncoder(hidden_dim, nhead, dim_feedforward, num_encoder_layers) for _ in self.use_encoder_idx
        )
        c4, blocks = round(expansion * hidden_dim // 2), round(3 * depth_mult)
        levels = len(in_channels)
        self.lateral_convs = nn.ModuleList(ConvNorm(hidden_dim, hidden_dim, 1) for _ in range(levels - 1))
        self.fpn_blocks = nn.ModuleList(
            RepNCSPELAN4(hidden_dim * 2, hidden_dim, hidden_dim * 2, c4, blocks) for _ in range(levels - 1)
        )
        self.downsample_convs = nn.ModuleList(
            nn.Sequential(SCDown(hidden_dim, hidden_dim, 3, 2)) for _ in range(levels - 1)
        )
        self.pan_blocks = nn.ModuleList(
            RepNCSPELAN4(hidden_dim * 2, hidden_dim, hidden_dim * 2, c4, blocks) for _ in range(levels - 1)
        )

    def forward(self, feats):
        proj = [p(f) for p, f in zip(self.input_proj, feats, strict=True)]
        for i, level in enumerate(self.use_encoder_idx):
            h, w = proj[level].shape[2:]
            flat = proj[level].flatten(2).permute(0, 2, 1)
            memory = self.encoder[i](flat, sincos_2d(w, h, self.hidden_dim).to(flat.device, flat.dtype))
            proj[level] = memory.permute(0, 2, 1).reshape(-1, self.hidden_dim, h, w).contiguous()
        levels = len(proj)
        inner = [proj[-1]]
        for idx in range(levels - 1, 0, -1):
            high = self.lateral_convs[levels - 1 - idx](inner[0])
            inner[0] = high
            up = F.interpolate(high, scale_factor=2.0, mode="nearest")
            inner.insert(0, self.fpn_blocks[levels - 1 - idx](torch.concat([up, proj[idx - 1]], dim=1)))
        outs = [inner[0]]
        for idx in range(levels - 1):
            down = self.downsample_convs[idx](outs[-1])
            outs.append(self.pan_blocks[idx](torch.concat([down, inner[idx + 1]], dim=1)))
        return outs


def _proj(cin: int, dim: int) -> nn.Sequential:
    proj = nn.Sequential()
    proj.add_module("conv", nn.Conv2d(cin, dim, 1, bias=False))
    proj.add_module("norm", nn.BatchNorm2d(dim))
    return proj
