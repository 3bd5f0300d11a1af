"""HGNetv2, D-FINE's backbone (sizes B0-B6), with the official module names.

Stem and stages of conv + batch norm + ReLU + learnable affine ("lab") blocks; stages 3 and 4 use
light (1x1 then depthwise) blocks; each block concatenates its layers and aggregates them with a
squeeze/excitation pair of 1x1 convolutions. `freeze_norm` swaps every batch norm for a frozen one,
as the L and X checkpoints have it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# stem (in, mid, out); per stage: in, mid, out, blocks, downsample, light block, kernel, layers
ARCH = {
    "B0": ((3, 16, 16), ((16, 16, 64, 1, False, False, 3, 3), (64, 32, 256, 1, True, False, 3, 3),
                         (256, 64, 512, 2, True, True, 5, 3), (512, 128, 1024, 1, True, True, 5, 3))),
    "B1": ((3, 24, 32), ((32, 32, 64, 1, False, False, 3, 3), (64, 48, 256, 1, True, False, 3, 3),
                         (256, 96, 512, 2, True, True, 5, 3), (512, 192, 1024, 1, True, True, 5, 3))),
    "B2": ((3, 24, 32), ((32, 32, 96, 1, False, False, 3, 4), (96, 64, 384, 1, True, False, 3, 4),
                         (384, 128, 768, 3, True, True, 5, 4), (768, 256, 1536, 1, True, True, 5, 4))),
    "B3": ((3, 24, 32), ((32, 32, 128, 1, False, False, 3, 5), (128, 64, 512, 1, True, False, 3, 5),
                         (512, 128, 1024, 3, True, True, 5, 5), (1024, 256, 2048, 1, True, True, 5, 5))),
    "B4": ((3, 32, 48), ((48, 48, 128, 1, False, False, 3, 6), (128, 96, 512, 1, True, False, 3, 6),
                         (512, 192, 1024, 3, True, True, 5, 6), (1024, 384, 2048, 1, True, True, 5, 6))),
    "B5": ((3, 32, 64), ((64, 64, 128, 1, False, False, 3, 6), (128, 128, 512, 2, True, False, 3, 6),
                         (512, 256, 1024, 5, True, True, 5, 6), (1024, 512, 2048, 2, True, True, 5, 6))),
    "B6": ((3, 48, 96), ((96, 96, 192, 2, False, False, 3, 6), (192, 192, 512, 3, True, False, 3, 6),
                         (512, 384, 1024, 6, True, True, 5, 6), (1024, 768, 2048, 3, True, True, 5, 6))),
}  # fmt: skip


class LearnableAffine(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([1.0]))
        self.bias = nn.Parameter(torch.tensor([0.0]))

    def forward(self, x):
        return self.scale * x + self.bias


class ConvBNAct(nn.Module):
    def __init__(self, cin, cout, kernel, stride=1, groups=1, act=True, lab=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act
        self.lab = LearnableAffine() if act and lab else nn.Identity()

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.lab(F.relu(x)) if self.act else x


class LightConvBNAct(nn.Module):
    def __init__(self, cin, cout, kernel, lab=True):
        super().__init__()
        self.conv1 = ConvBNAct(cin, cout, 1, act=False, lab=lab)
        self.conv2 = ConvBNAct(cout, cout, kernel, groups=cout, act=True, lab=lab)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class StemBlock(nn.Module):
    def __init__(self, cin, mid, cout, lab=True):
        super().__init__()
        self.stem1 = ConvBNAct(cin, mid, 3, stride=2, lab=lab)
        self.stem2a = ConvBNAct(mid, mid // 2, 2, lab=lab)
        self.stem2b = ConvBNAct(mid // 2, mid, 2, lab=lab)
        self.stem3 = ConvBNAct(mid * 2, mid, 3, stride=2, lab=lab)
        self.stem4 = ConvBNAct(mid, cout, 1, lab=lab)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=1, ceil_mode=True)

    def forward(self, x):
        x = F.pad(self.stem1(x), (0, 1, 0, 1))
        branch = self.stem2b(F.pad(self.stem2a(x), (0, 1, 0, 1)))
        return self.stem4(self.stem3(torch.cat([self.pool(x), branch], dim=1)))


class HGBlock(nn.Module):
    def __init__(self, cin, mid, cout, layers, kernel, residual, light, lab=True):
        super().__init__()
        self.residual = residual
        make = (lambda i: LightConvBNAct(cin if i == 0 else mid, mid, kernel, lab)) if light else (
            lambda i: ConvBNAct(cin if i == 0 else mid, mid, kernel, lab=lab))  # fmt: skip
        self.layers = nn.ModuleList(make(i) for i in range(layers))
        total = cin + layers * mid
        self.aggregation = nn.Sequential(
            ConvBNAct(total, cout // 2, 1, lab=lab), ConvBNAct(cout // 2, cout, 1, lab=lab)
        )

    def forward(self, x):
        outputs = [x]
        for layer in self.layers:
            outputs.append(layer(outputs[-1]))
        y = self.aggregation(torch.cat(outputs, dim=1))
        return y + x if self.residual else y


class HGStage(nn.Module):
    def __init__(self, cin, mid, cout, blocks, downsample, light, kernel, layers, lab=True):
        super().__init__()
        self.downsample = (
            ConvBNAct(cin, cin, 3, stride=2, groups=cin, act=False, lab=lab) if downsample else nn.Identity()
        )
        self.blocks = nn.Sequential(
            *(HGBlock(cin if i == 0 else cout, mid, cout, layers, kernel, i > 0, light, lab) for i in range(blocks))
        )

    def forward(self, x):
        return self.blocks(self.downsample(x))


def _freeze_norms(module: nn.Module) -> None:
    # imported here: torchvision costs ~1.1 s of start-up (its ops import torch._dynamo), and the N/S/M
    # backbones, which have no frozen norms, never need it
    from torchvision.ops import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features))
        else:
            _freeze_norms(child)


class HGNetv2(nn.Module):
    def __init__(self, name: str, return_idx=(1, 2, 3), use_lab: bool = True, freeze_norm: bool = False):
        super().__init__()
        stem, stages = ARCH[name]
        self.return_idx = tuple(return_idx)
        self.out_channels = [stages[i][2] for i in self.return_idx]
        self.stem = StemBlock(*stem, lab=use_lab)
        self.stages = nn.ModuleList(HGStage(*cfg, lab=use_lab) for cfg in stages)
        if freeze_norm:
            _freeze_norms(self)

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.return_idx:
                outs.append(x)
        return outs
