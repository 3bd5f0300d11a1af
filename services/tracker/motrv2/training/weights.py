"""Initial weights for fine-tuning: an official or fine-tuned checkpoint, loaded strictly except for the class
heads when the class count changes.

A 1-class checkpoint into a 2-class (player + ball) model: the checkpoint's row becomes class 0 (player) and
the other rows keep the model's own head initialisation (Deformable DETR's prior bias, -log(99)), where the
group's fork fails with a size mismatch. In general the first min(old, new) rows are copied. Every other key
must match by name and shape: weights of another architecture are refused with the keys that differ.
"""

from __future__ import annotations

import math
import os

import torch

from shared.errors import InputError

from ..checkpoint import config_from_state_dict, read_checkpoint
from ..config import MOTRv2Config
from ..model import MOTRv2

PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)


def build_from_weights(path: str | os.PathLike, num_classes: int | None = None) -> tuple[MOTRv2, str]:
    """(model with the checkpoint's weights, a one-line report of what changed)."""
    state, _ = read_checkpoint(path)
    ckpt_cfg = config_from_state_dict(state)
    classes = num_classes or ckpt_cfg.num_classes
    cfg = MOTRv2Config(**{**ckpt_cfg.__dict__, "num_classes": classes})
    model = MOTRv2(cfg)
    with torch.no_grad():
        for head in model.class_embed:
            head.bias.fill_(PRIOR_BIAS)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k, v in expected.items() if k in state and state[k].shape != v.shape and "class_embed" not in k]
    if missing or unexpected or wrong:
        raise InputError(
            f"weights do not fit MOTRv2: missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {wrong[:3]}",
            source=str(path),
        )
    merged = dict(state)
    copied = min(ckpt_cfg.num_classes, classes)
    for key, value in expected.items():
        if "class_embed" in key and state[key].shape != value.shape:
            fresh = value.clone()
            fresh[:copied] = state[key][:copied]
            merged[key] = fresh
    model.load_state_dict(merged, strict=True)
    report = f"loaded {path} ({ckpt_cfg.num_classes} class(es))"
    if classes != ckpt_cfg.num_classes:
        report += (
            f"; class heads {ckpt_cfg.num_classes} -> {classes}: rows 0..{copied - 1} copied from the checkpoint, "
            f"rows {copied}..{classes - 1} start from the model's own head initialisation"
        )
    return model, report


def fresh_model(cfg: MOTRv2Config, seed: int = 0) -> MOTRv2:
    """A model initialised as the official `MOTR.__init__` does (prior class bias, zero last box layer so the
    first boxes equal the reference boxes, uniform learned reference points); deterministic for a seed.
    Used for small test and benchmark configurations; fine-tuning starts from a checkpoint."""
    torch.manual_seed(seed)
    model = MOTRv2(cfg)
    with torch.no_grad():
        for head in model.class_embed:
            head.bias.fill_(PRIOR_BIAS)
        for box in model.bbox_embed:
            torch.nn.init.zeros_(box.layers[-1].weight)
            torch.nn.init.zeros_(box.layers[-1].bias)
        model.bbox_embed[0].layers[-1].bias[2:] = -2.0
        for proj in model.input_proj:
            torch.nn.init.xavier_uniform_(proj[0].weight)
            torch.nn.init.zeros_(proj[0].bias)
        torch.nn.init.uniform_(model.position.weight, 0, 1)
    return model
