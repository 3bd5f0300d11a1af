"""Inference-time fusion of the HGNetv2 backbone, applied by the detector on top of the official `deploy()`.

Each conv + batch norm pair becomes one convolution with a bias (the norm's scale and shift folded into the
weights in float64, then rounded to the model's dtype; the L/X backbones' frozen norms keep their own
arithmetic, applied in place); ReLU and the learnable affine run in place on the convolution's output
instead of allocating two more feature maps; the stem's 2x2 stride-1 max pool becomes two maxima of
shifted views (max is exact: same values; 1.7 ms instead of 31 ms on one thread, as `max_pool2d` computes
an index tensor it does not return). The N backbone on one thread: 186 -> ~100 ms. Outputs stay within
the parity tolerances (`tests/test_dfine_parity.py` runs the fused model too). Training never sees a
fused model.
"""

from __future__ import annotations

import torch
from torch import nn

from .hgnetv2 import ConvBNAct, LearnableAffine, StemBlock


class FusedConvAct(nn.Module):
    """`ConvBNAct` for inference: conv (batch norm folded in, or a frozen norm's affine applied in place),
    then optionally ReLU and the learnable `scale * x + bias`, both in place."""

    def __init__(self, conv: nn.Conv2d, act: bool, affine: tuple[float, float] | None, norm=None):
        super().__init__()
        self.conv, self.act, self.affine = conv, act, affine
        self.has_norm = norm is not None
        if norm is not None:
            self.register_buffer("norm_scale", norm[0])
            self.register_buffer("norm_shift", norm[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.has_norm:
            x = x.mul_(self.norm_scale).add_(self.norm_shift)
        if self.act:
            x = torch.relu_(x)
            if self.affine is not None:
                x = x.mul_(self.affine[0]).add_(self.affine[1])
        return x


class ShiftedMaxPool(nn.Module):
    """`MaxPool2d(kernel_size=2, stride=1, ceil_mode=True)` on an (H+1, W+1) map -> (H, W), without indices."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        across = torch.maximum(x[..., :, :-1], x[..., :, 1:])  # (H+1, W): max of horizontal neighbours
        return torch.maximum(across[..., :-1, :], across[..., 1:, :])


def _fold(block: ConvBNAct) -> FusedConvAct:
    conv, norm = block.conv, block.bn
    lab = block.lab
    affine = (lab.scale.item(), lab.bias.item()) if isinstance(lab, LearnableAffine) else None
    if not isinstance(norm, nn.BatchNorm2d):
        # torchvision's FrozenBatchNorm2d (L, X): its own arithmetic, `x * scale + shift` with the scale and
        # shift it computes, in place; folding it would round differently, and the L reference's query
        # selection has near-ties that a different rounding flips (measured under MKL's AVX2 path)
        scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
        shift = norm.bias - norm.running_mean * scale
        return FusedConvAct(conv, block.act, affine, (scale[None, :, None, None], shift[None, :, None, None]))
    scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      groups=conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype)  # fmt: skip
    with torch.no_grad():
        fused.weight.copy_(conv.weight.double() * scale[:, None, None, None])
        fused.bias.copy_(norm.bias.double() - norm.running_mean.double() * scale)
    return FusedConvAct(fused, block.act, affine).eval()


def fuse_backbone(model: nn.Module) -> nn.Module:
    """Fuse `model.backbone` in place (an inference-only model: its parameters no longer match a checkpoint)."""

    def visit(module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, ConvBNAct):
                setattr(module, name, _fold(child))
            else:
                if isinstance(child, StemBlock):
                    child.pool = ShiftedMaxPool()
                visit(child)

    visit(model.backbone)
    return model
