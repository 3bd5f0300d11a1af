"""What trains and how: the group's strategies (trainable sets), the official AdamW parameter groups and
the step schedule.

Strategies are the group's fork's `--train_strategy`: a parameter trains when its name contains one of the
strategy's keys. The fork's `aggressive` adds `query_interaction`, which names no parameter (the QIM is
`track_embed`), so it trains exactly what `moderate` trains; we keep that meaning (their checkpoints were
trained so) and say it at start. `full` is the official behaviour: everything except the backbone stem
(`conv1`, `layer1`), and the whole backbone is frozen when the backbone learning rate is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from shared.errors import InputError

STRATEGIES: dict[str, tuple[str, ...] | None] = {
    "minimal": ("yolox_embed",),
    "moderate": ("yolox_embed", "track_embed", "class_embed"),
    "aggressive": ("yolox_embed", "track_embed", "class_embed", "query_interaction"),
    "full": None,
}
STRATEGY_NOTES = {
    "aggressive": "the fork's 'aggressive' adds the key 'query_interaction', which matches no parameter "
    "(the QIM is 'track_embed'): it trains exactly what 'moderate' trains",
}
BACKBONE_NAMES = ("backbone.0",)
LINEAR_PROJ_NAMES = ("reference_points", "sampling_offsets")
_TRAINABLE_BACKBONE = ("layer2", "layer3", "layer4")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4
    lr_backbone: float = 2e-5
    lr_linear_proj_mult: float = 0.1
    weight_decay: float = 1e-4
    lr_drop: int = 4
    clip_max_norm: float = 0.1


@dataclass(frozen=True)
class TrainableSet:
    strategy: str
    keys: tuple[str, ...] | None
    names: tuple[str, ...]
    trainable: int
    total: int
    note: str = ""

    def summary(self) -> str:
        keys = "official: all but the backbone stem" if self.keys is None else ", ".join(self.keys)
        text = f"strategy {self.strategy} ({keys}): {self.trainable:,} of {self.total:,} parameters train"
        return f"{text}; {self.note}" if self.note else text


def apply_trainable(
    model: nn.Module, strategy: str = "full", keys: list[str] | None = None, lr_backbone: float = 2e-5
) -> TrainableSet:
    """Set `requires_grad` for the strategy (or explicit substring keys) and report what trains."""
    if keys:
        strategy, chosen = "custom", tuple(keys)
    elif strategy not in STRATEGIES:
        raise InputError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}", field="strategy")
    else:
        chosen = STRATEGIES[strategy]
    for name, param in model.named_parameters():
        if chosen is None:
            backbone = name.startswith("backbone.")
            param.requires_grad_(not backbone or (lr_backbone > 0 and any(k in name for k in _TRAINABLE_BACKBONE)))
        else:
            param.requires_grad_(any(k in name for k in chosen))
    names = tuple(n for n, p in model.named_parameters() if p.requires_grad)
    if not names:
        raise InputError(f"the trainable keys {list(chosen or [])} match no parameter", field="trainable")
    return TrainableSet(
        strategy=strategy,
        keys=chosen,
        names=names,
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.parameters()),
        note=STRATEGY_NOTES.get(strategy, ""),
    )


def list_strategies(model: nn.Module, lr_backbone: float = 2e-5) -> list[TrainableSet]:
    """Every strategy's trainable set on this model (leaves the model fully trainable as `full` does)."""
    sets = [apply_trainable(model, name, lr_backbone=lr_backbone) for name in STRATEGIES]
    apply_trainable(model, "full", lr_backbone=lr_backbone)
    return sets


def _matches(name: str, keys: tuple[str, ...]) -> bool:
    return any(k in name for k in keys)


def parameter_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """main.py's three groups over the trainable parameters: the rest (lr), the backbone (lr_backbone),
    the sampling offsets (lr x lr_linear_proj_mult)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    rest = [p for n, p in named if not _matches(n, BACKBONE_NAMES) and not _matches(n, LINEAR_PROJ_NAMES)]
    backbone = [p for n, p in named if _matches(n, BACKBONE_NAMES)]
    linear_proj = [p for n, p in named if _matches(n, LINEAR_PROJ_NAMES)]
    return [
        {"params": rest, "lr": cfg.lr},
        {"params": backbone, "lr": cfg.lr_backbone},
        {"params": linear_proj, "lr": cfg.lr * cfg.lr_linear_proj_mult},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.StepLR:
    """Learning rates x0.1 every `lr_drop` epochs (stepped once per epoch)."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_drop, gamma=0.1)
