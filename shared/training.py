"""What both training loops (MOTRv2, D-FINE) report and how they write checkpoints: the per-step and
per-epoch records the job runner consumes, the rank/world of a torchrun process, and atomic checkpoint
files (a temporary name, fsync, rename: a killed process never leaves a torn `checkpoint.pth`).

Torch is imported inside the functions: the API processes import `shared` without it."""

from __future__ import annotations

from dataclasses import dataclass
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


def rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def save_checkpoint(path: Path, state: dict) -> None:
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(state, handle)
