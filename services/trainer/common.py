"""What every training job shares: the torchrun process group, and the per-step logs — log.jsonl (every
step, with learning rates), the `--log-json` contract (one compact object per step: every loss term under
its official name, `loss`, `grad_norm`) and TensorBoard scalars."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.distributed as dist


def distributed() -> tuple[int, int, int]:
    """(rank, world, local rank) under torchrun, initialising the process group once."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and os.environ.get("MOTPIPE_DDP_BACKEND") != "gloo" else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


class StepWriter:
    """log.jsonl (every step, with lrs), --log-json (the one-step contract: terms, loss, grad_norm) and
    TensorBoard scalars."""

    def __init__(self, folder: Path, log_json: Path | None, tensorboard: bool, resume: bool):
        mode = "a" if resume else "w"
        folder.mkdir(parents=True, exist_ok=True)
        self.log = open(folder / "log.jsonl", mode, encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.contract = open(log_json, mode, encoding="utf-8") if log_json else None  # noqa: SIM115
        self.board = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.board = SummaryWriter(log_dir=str(folder / "tensorboard"))

    def step(self, entry) -> None:  # a StepLog of either training loop (same fields)
        record = {**entry.losses, "loss": entry.loss, "grad_norm": entry.grad_norm}
        self.log.write(json.dumps({"step": entry.step, "epoch": entry.epoch, **record, "lr": entry.lrs}) + "\n")
        self.log.flush()
        if self.contract:
            self.contract.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.contract.flush()
        if self.board:
            for name, value in record.items():
                self.board.add_scalar(f"train/{name}", value, entry.step)
            for i, lr in enumerate(entry.lrs):
                self.board.add_scalar(f"lr/group{i}", lr, entry.step)

    def epoch(self, epoch: int, losses: dict[str, float], val: dict[str, float] | None) -> None:
        if self.board:
            self.board.add_scalar("epoch/loss", losses.get("loss", float("nan")), epoch)
            for name, value in (val or {}).items():
                self.board.add_scalar(f"val/{name}", value, epoch)
            self.board.flush()

    def close(self) -> None:
        self.log.close()
        if self.contract:
            self.contract.close()
        if self.board:
            self.board.close()


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True
