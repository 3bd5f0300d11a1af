"""The whole D-FINE model (backbone -> hybrid encoder -> decoder) and its postprocessor."""

from __future__ import annotations

import torch
from torch import nn

from .decoder import DFINETransformer
from .hgnetv2 import HGNetv2
from .hybrid_encoder import HybridEncoder


class DFINE(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        b, e, d = cfg["backbone"], cfg["encoder"], cfg["decoder"]
        self.num_classes = cfg["num_classes"]
        self.backbone = HGNetv2(b["name"], b["return_idx"], b["use_lab"], b.get("freeze_norm", False))
        self.decoder = DFINETransformer(
            cfg["num_classes"], d["hidden_dim"], d["num_queries"], d["feat_channels"], d["feat_strides"],
            d["num_levels"], d["num_points"], d["num_layers"], d["dim_feedforward"], d["reg_max"], d["reg_scale"],
            cfg["eval_spatial_size"],
        )  # fmt: skip
        self.encoder = HybridEncoder(e["in_channels"], e["hidden_dim"], e["use_encoder_idx"], e["num_encoder_layers"],
                                     e["nhead"], e["dim_feedforward"], e["expansion"], e["depth_mult"])  # fmt: skip

    def deploy(self) -> DFINE:
        """Inference form, as the official `model.deploy()`: encoder conv + norm pairs and the VGG blocks'
        two branches are folded into single convolutions (same function; the rounding matches theirs)."""
        from .hybrid_encoder import ConvNorm, VGGBlock

        for module in list(self.encoder.modules()):
            if isinstance(module, VGGBlock):
                module.deploy()
        for module in list(self.encoder.modules()):
            if isinstance(module, ConvNorm) and hasattr(module, "conv") and not _inside_vgg(self.encoder, module):
                module.deploy()
        return self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 640, 640) in 0..1 -> pred_logits (B, 300, classes), pred_boxes (B, 300, 4) cx, cy, w, h."""
        return self.decoder(self.encoder(self.backbone(images)))


def postprocess(logits: torch.Tensor, boxes: torch.Tensor, sizes: torch.Tensor, top: int = 300):
    """Top `top` (query, class) pairs by sigmoid score; boxes x1y1x2y2 in original pixels (sizes: (B, 2) w, h)."""
    cx, cy, w, h = boxes.unbind(-1)
    xyxy = torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], -1)
    xyxy = xyxy * sizes.repeat(1, 2).unsqueeze(1)
    scores, index = torch.topk(torch.sigmoid(logits).flatten(1), top, dim=-1)
    classes = logits.shape[-1]
    labels = index - index // classes * classes
    query = index // classes
    return labels, xyxy.gather(dim=1, index=query.unsqueeze(-1).repeat(1, 1, 4)), scores


def _inside_vgg(root: nn.Module, target: nn.Module) -> bool:
    """VGG blocks' branch layers are not fused on their own (the official ConvNormLayer has no deploy)."""
    from .hybrid_encoder import VGGBlock

    return any(isinstance(m, VGGBlock) and any(c is target for c in m.children()) for m in root.modules())
