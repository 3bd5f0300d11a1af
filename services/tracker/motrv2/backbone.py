"""ResNet-50 (torchvision) with frozen batch norm, returning layer2..layer4 as in Deformable DETR."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops import FrozenBatchNorm2d


class Backbone(nn.Module):
    """`backbone.0.body.*` in the checkpoint: the ResNet trunk without avgpool and fc."""

    def __init__(self):
        super().__init__()
        trunk = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        self.body = IntermediateLayerGetter(trunk, return_layers={"layer2": "0", "layer3": "1", "layer4": "2"})

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return list(self.body(images).values())


class Joiner(nn.Sequential):
    """Index 0 is the backbone (index 1, the position encoding, holds no weights)."""

    def __init__(self, backbone: Backbone, position_encoding: nn.Module):
        super().__init__(backbone, position_encoding)
