"""What both training loops (MOTRv2, D-FINE) report and how they write checkpoints: the per-step and
per-epoch records the job runner consumes, the rank/world of a torchrun process, and atomic checkpoint
files (a temporary name, fsync, rename: a killed process never leaves a torn `checkpoint.pth`).

Torch is imported inside the functions: the API processes import `shared` without it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from shared.atomic import atomic_open


@dataclass
class StepLog:
    step: int
    epoch: int
    losses: dict[str, float]  # every term under its official name, already weighted
    loss: float
    grad_norm: float  # before clipping
    lrs: list[float]


@dataclass
class EpochResult:
    epoch: int
    steps: int
    mean_losses: dict[str, float]
    checkpoints: list[str]
    complete: bool  # False when --max-steps ended the epoch early


@dataclass
class EpochMeans:
    """Per-epoch means of the step values, each over the steps where it was finite: under float16 AMP the
    GradScaler skips the steps whose gradients overflowed, and their grad norm (inf) is no measurement."""

    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, values: dict[str, float]) -> None:
        for key, value in values.items():
            if math.isfinite(value):
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        return {key: total / self.counts[key] for key, total in self.sums.items()}


def rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def save_checkpoint(path: Path, state: dict) -> None:
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)
