"""The official optimisation around one D-FINE step (TRAINING_SPEC §5): AdamW parameter groups from each
size's config (regexes on parameter names, quirks included), linear warmup applied per iteration, the
per-epoch MultiStepLR, gradient clipping at 0.1, and the model EMA (ModelEMA with its warmup).

`--lr` scales every group by lr / the config's base lr, so the config's ratios (backbone slower) stay.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass

import torch
from torch import nn

# The optimizer blocks of configs/dfine/dfine_hgnetv2_{n,s,m,l,x}_coco.yml (the custom configs use the same):
# (base lr, weight decay, [(regex, lr or None, weight decay or None), ...]). The regex
# `^(?=.*backbone)(?!.*norm|bn).*$` parses as "not (.*norm) and not (bn at position 0)", so HGNetv2's `.bn.`
# parameters land in the first group with weight decay and the second group stays empty — as officially.
_BACKBONE = r"^(?=.*backbone)(?!.*norm|bn).*$"
_BACKBONE_NORM = r"^(?=.*backbone)(?=.*norm|bn).*$"
_HEAD_NORM_BIAS = r"^(?=.*(?:encoder|decoder))(?=.*(?:norm|bn|bias)).*$"
_HEAD_NORM = r"^(?=.*(?:encoder|decoder))(?=.*(?:norm|bn)).*$"
SIZE_OPTIM = {
    "n": (8e-4, 1e-4, [(_BACKBONE, 4e-4, None), (_BACKBONE_NORM, 4e-4, 0.0), (_HEAD_NORM_BIAS, None, 0.0)]),
    "s": (2.5e-4, 1.25e-4, [(_BACKBONE, 1.25e-4, None), (_BACKBONE_NORM, 1.25e-4, 0.0), (_HEAD_NORM_BIAS, None, 0.0)]),
    "m": (2.5e-4, 1.25e-4, [(_BACKBONE, 2.5e-5, None), (_BACKBONE_NORM, 2.5e-5, 0.0), (_HEAD_NORM_BIAS, None, 0.0)]),
    "l": (2.5e-4, 1.25e-4, [(_BACKBONE, 1.25e-5, None), (_HEAD_NORM, None, 0.0)]),
    "x": (2.5e-4, 1.25e-4, [(_BACKBONE, 2.5e-6, None), (_HEAD_NORM, None, 0.0)]),
}
# The part of the official schedule trained without the heavy augmentations (policy epoch / epochs of the
# custom configs: N 200/220, S and M 120/132, L and X 72/80).
NO_AUG_FRACTION = {"n": 20 / 220, "s": 12 / 132, "m": 12 / 132, "l": 8 / 80, "x": 8 / 80}


@dataclass
class OptimConfig:
    size: str = "n"
    lr: float | None = None  # None: the config's base lr
    weight_decay: float | None = None
    warmup_steps: int = 500
    clip_max_norm: float = 0.1
    ema_decay: float = 0.9999
    ema_warmups: int = 1000


def parameter_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    base_lr, base_wd, groups = SIZE_OPTIM[cfg.size]
    scale = (cfg.lr / base_lr) if cfg.lr else 1.0
    wd = base_wd if cfg.weight_decay is None else cfg.weight_decay
    named = [(k, v) for k, v in model.named_parameters() if v.requires_grad]
    visited: set[str] = set()
    out = []
    for pattern, lr, decay in groups:
        params = [v for k, v in named if re.findall(pattern, k)]
        visited.update(k for k, _ in named if re.findall(pattern, k))
        out.append({"params": params, "lr": (lr or base_lr) * scale, "weight_decay": wd if decay is None else decay})
    rest = [v for k, v in named if k not in visited]
    if rest:
        out.append({"params": rest, "lr": base_lr * scale, "weight_decay": wd})
    return out


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, cfg), betas=(0.9, 0.999))


class LinearWarmup:
    """lr = initial lr x min(1, (k + 1) / steps), set at construction (k = 0) and after every optimizer step."""

    def __init__(self, optimizer: torch.optim.Optimizer, steps: int):
        self.optimizer, self.warmup_duration, self.last_step = optimizer, max(int(steps), 0), 0
        self.warmup_end_values = [g.setdefault("initial_lr", g["lr"]) for g in optimizer.param_groups]
        self._apply()

    def factor(self) -> float:
        return 1.0 if self.warmup_duration == 0 else min(1.0, (self.last_step + 1) / self.warmup_duration)

    def _apply(self) -> None:
        if self.last_step < self.warmup_duration or self.warmup_duration == 0:
            for group, end in zip(self.optimizer.param_groups, self.warmup_end_values, strict=True):
                group["lr"] = end * self.factor()

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def finished(self) -> bool:
        return self.last_step >= self.warmup_duration

    def state_dict(self) -> dict:
        return {
            "last_step": self.last_step,
            "warmup_duration": self.warmup_duration,
            "warmup_end_values": list(self.warmup_end_values),
        }

    def load_state_dict(self, state: dict) -> None:
        self.last_step = int(state["last_step"])
        self.warmup_duration = int(state["warmup_duration"])
        self.warmup_end_values = list(state["warmup_end_values"])
        self._apply()


class ModelEMA:
    """Exponential moving average of every floating state entry (weights, BN statistics, anchors);
    decay d_k = decay x (1 - exp(-k / warmups)) at update k (1-based)."""

    def __init__(self, model: nn.Module, decay: float = 0.9999, warmups: int = 1000):
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.warmups, self.updates = decay, warmups, 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.warmups))
        current = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value *= d
                value += (1 - d) * current[name].detach()

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"], strict=True)
        self.updates = int(state["updates"])


def freeze_like_official(model: nn.Module, size: str) -> None:
    """L and X train with a frozen stem (`freeze_at: 0, freeze_stem_only: True`); N, S, M train everything."""
    if size in ("l", "x"):
        for p in model.backbone.stem.parameters():
            p.requires_grad_(False)
