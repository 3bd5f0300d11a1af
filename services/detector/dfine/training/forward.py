"""D-FINE in train mode: the official training forward on our modules (same weights, same names).

Differences from inference (../reference/dfine_train/TRAINING_SPEC.md §1): anchors are regenerated from
the actual feature shapes, every decoder layer runs and is returned, the FDR bin values are computed with
tensor arithmetic in the parameters' dtype, and the outputs carry what the criterion needs — each layer's
corners and the shared initial reference (`ref_points`), the pre-decoder (`pre_outputs`) and encoder
(`enc_aux_outputs`) predictions, the last layer as teacher of the others (`teacher_corners/logits`), and with
denoising the `dn_*` outputs split off the front of the query axis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..decoder import distance2bbox, inverse_sigmoid
from ..model import DFINE
from .denoising import DenoisingGroups


def bin_values(reg_max: int, up: torch.Tensor, reg_scale: torch.Tensor) -> torch.Tensor:
    """FDR's non-uniform bin values W(n) as the training model computes them (tensors, not Python floats)."""
    bound1 = up[0].abs() * reg_scale.abs()
    bound2 = bound1 * 2
    step = (bound1 + 1) ** (2 / (reg_max - 2))
    left = [-(step**i) + 1 for i in range(reg_max // 2 - 1, 0, -1)]
    right = [step**i - 1 for i in range(1, reg_max // 2)]
    values = [-bound2, *left, torch.zeros_like(up[0][None]), *right, bound2]
    return torch.cat([v.reshape(1) for v in values])


def _integral(corners: torch.Tensor, project: torch.Tensor, reg_max: int) -> torch.Tensor:
    prob = F.softmax(corners.reshape(-1, reg_max + 1), dim=1)
    return F.linear(prob, project.to(prob.dtype)).reshape(list(corners.shape[:-1]) + [4])


def train_forward(model: DFINE, images: torch.Tensor, dn: DenoisingGroups | None = None) -> dict:
    """The official train-mode output dict for a batch of images (B, 3, H, W) in 0..1."""
    head = model.decoder
    feats = model.encoder(model.backbone(images))
    proj = [p(f) for p, f in zip(head.input_proj, feats, strict=False)]
    shapes = [tuple(f.shape[2:]) for f in proj]
    memory = torch.concat([f.flatten(2).permute(0, 2, 1) for f in proj], 1)
    b = memory.shape[0]

    # query selection (anchors float32, as the official code builds them; adding promotes)
    anchors, valid = head.anchors_for_shapes(shapes)
    anchors, valid = anchors.to(memory.device), valid.to(memory.device)
    if b > 1:
        anchors = anchors.repeat(b, 1, 1)
    out_memory = head.enc_output(valid.to(memory.dtype) * memory)
    enc_logits = head.enc_score_head(out_memory)
    _, index = torch.topk(enc_logits.max(-1).values, head.num_queries, dim=-1)

    def pick(x: torch.Tensor) -> torch.Tensor:
        return x.gather(1, index.unsqueeze(-1).repeat(1, 1, x.shape[-1]))

    top_memory, top_logits = pick(out_memory), pick(enc_logits)
    top_unact = head.enc_bbox_head(top_memory) + pick(anchors)
    enc_out = {"pred_logits": top_logits, "pred_boxes": torch.sigmoid(top_unact)}
    content, ref_unact = top_memory.detach(), top_unact.detach()
    attn_mask, n_dn = None, 0
    if dn is not None:
        # the groups are drawn on the CPU (the official draw order); their tensors join the model's device here
        content = torch.concat([head.denoising_class_embed(dn.labels.to(memory.device)), content], dim=1)
        ref_unact = torch.concat([dn.boxes_unact.to(ref_unact.device), ref_unact], dim=1)
        attn_mask, n_dn = dn.attn_mask.to(memory.device), dn.num_queries

    layers = _decode(head, content, ref_unact, memory, shapes, attn_mask)
    boxes, logits, corners, refs, pre_boxes, pre_logits = layers
    keys = ("pred_logits", "pred_boxes", "pred_corners", "ref_points")
    per_layer = list(zip(logits, boxes, corners, refs, strict=True))

    def part(values, dn_part: bool) -> dict:
        return {k: v[:, :n_dn] if dn_part else v[:, n_dn:] for k, v in zip(keys, values, strict=True)}

    def with_teacher(layers: list[dict]) -> list[dict]:
        teacher = {"teacher_corners": layers[-1]["pred_corners"], "teacher_logits": layers[-1]["pred_logits"]}
        return [{**m, **teacher} for m in layers]

    main = [part(t, False) for t in per_layer]
    out = {**main[-1], "up": head.up, "reg_scale": head.reg_scale}
    out["aux_outputs"] = with_teacher(main)[:-1]
    out["pre_outputs"] = {"pred_logits": pre_logits[:, n_dn:], "pred_boxes": pre_boxes[:, n_dn:]}
    out["enc_aux_outputs"] = [enc_out]
    if dn is not None:
        out["dn_outputs"] = with_teacher([part(t, True) for t in per_layer])
        out["dn_pre_outputs"] = {"pred_logits": pre_logits[:, :n_dn], "pred_boxes": pre_boxes[:, :n_dn]}
        out["dn_meta"] = dn
    return out


def _decode(head, target, ref_unact, memory, shapes, attn_mask):
    """Every decoder layer (official TransformerDecoder.forward in training): per-layer boxes, LQE logits,
    corners and the initial reference, plus the pre-decoder boxes/logits."""
    dec = head.decoder
    heads = dec.layers[0].cross_attn.heads
    values = memory.reshape(memory.shape[0], memory.shape[1], heads, -1).permute(0, 2, 3, 1)
    values = values.split([h * w for h, w in shapes], dim=-1)
    project = bin_values(head.reg_max, head.up, head.reg_scale)
    ref = torch.sigmoid(ref_unact)
    output_detach = corners_prev = 0
    boxes, logits, corners_all, refs = [], [], [], []
    for i, layer in enumerate(dec.layers):
        target = layer(target, ref.unsqueeze(2), values, shapes, head.query_pos_head(ref), attn_mask)
        if i == 0:
            pre_boxes = torch.sigmoid(head.pre_bbox_head(target) + inverse_sigmoid(ref))
            pre_logits = head.dec_score_head[0](target)
            ref_initial = pre_boxes.detach()
        corners = head.dec_bbox_head[i](target + output_detach) + corners_prev
        box = distance2bbox(ref_initial, _integral(corners, project, head.reg_max), head.reg_scale)
        logits.append(dec.lqe_layers[i](head.dec_score_head[i](target), corners))
        boxes.append(box)
        corners_all.append(corners)
        refs.append(ref_initial)
        corners_prev, ref, output_detach = corners, box.detach(), target.detach()
    return boxes, logits, corners_all, refs, pre_boxes, pre_logits
