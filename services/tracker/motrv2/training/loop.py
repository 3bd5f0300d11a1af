"""The MOTRv2 training loop: `train_step(clip) -> dict` and the epoch loop (the official
`engine.train_one_epoch_mot` + `main.py`), with checkpoint save and resume.

One step = one clip (the official batch size 1): loss terms, weighted total, backward, gradient norm over
all trainable parameters clipped to `clip_max_norm` (the norm reported is the one before clipping), AdamW
step. The step schedule (`StepLR`, x0.1 every `lr_drop` epochs) moves once per epoch.

Randomness is re-seeded at the start of every epoch from (seed, epoch, rank) — clip order, frame steps,
augmentation, denoise noise — so an epoch resumed from the previous epoch's checkpoint is the same epoch
an uninterrupted run trains. Checkpoints use the official layout (`model`, `optimizer`, `lr_scheduler`,
`epoch`, `args`; `args` a plain dict so `torch.load(weights_only=True)` reads it) and are written to a
temporary name, fsynced and renamed, so a killed process never leaves a torn `checkpoint.pth`.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from shared.errors import InputError
from shared.training import EpochMeans, EpochResult, StepLog, rank_world, save_checkpoint

from ..checkpoint import load_checkpoint_dict
from .clip import Clip, ClipModel
from .criterion import weighted_total
from .data import ClipDataset
from .optim import OptimConfig, build_optimizer, build_scheduler


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, say); the job fails with this reason."""


@dataclass
class LoopConfig:
    epochs: int = 5
    max_steps: int | None = None
    seed: int = 42
    save_period: int | None = None
    autocast: bool = False  # bf16 autocast
    optim: OptimConfig = field(default_factory=OptimConfig)


def read_training_checkpoint(path: Path) -> dict:
    """The whole checkpoint dict (through the tracker's safe loader); resuming needs its optimizer state too."""
    state = load_checkpoint_dict(path)
    missing = [k for k in ("model", "optimizer", "lr_scheduler", "epoch") if k not in state]
    if missing:
        raise InputError(f"cannot resume: the checkpoint has no {missing}", source=str(path))
    return state


class Trainer:
    def __init__(
        self,
        clip_model: ClipModel,
        dataset: ClipDataset,
        cfg: LoopConfig,
        out_dir: Path,
        device: torch.device,
        args: dict | None = None,
        wrapped: torch.nn.Module | None = None,  # the DDP wrapper, when distributed
    ):
        self.clip_model = clip_model
        self.model = clip_model.model
        self.forward = wrapped or clip_model
        self.dataset = dataset
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.device = device
        self.args = args or {}
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.start_epoch = 0
        self.global_step = 0
        self.rank, self.world = rank_world()

    # -- one step -------------------------------------------------------------------------------------
    def train_step(self, clip: Clip) -> tuple[dict[str, float], float, float]:
        """(loss terms, weighted total, gradient norm before clipping) after one optimizer step."""
        # bf16 autocast (meant for GPUs; CPU autocast runs the same code path, which is how the tests check it)
        use = self.cfg.autocast
        context = torch.autocast(self.device.type, dtype=torch.bfloat16) if use else contextlib.nullcontext()
        with context:
            losses = self.forward(clip.to(self.device))
            total = weighted_total(losses)
        # every logged value in one transfer (one device sync per step, not one per term)
        values = torch.stack([v.detach().double() for v in (*losses.values(), total)]).tolist()
        terms, total_value = dict(zip(losses, values[:-1], strict=True)), values[-1]
        if not math.isfinite(total_value):
            bad = {k: v for k, v in terms.items() if not math.isfinite(v)}
            raise TrainingError(f"loss is {total_value} on {clip.source}: non-finite terms {bad}")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        max_norm = self.cfg.optim.clip_max_norm
        if max_norm > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        else:
            norm = torch.linalg.vector_norm(
                torch.stack([p.grad.detach().norm() for p in self.params if p.grad is not None])
            )
        self.optimizer.step()
        return terms, total_value, float(norm)

    # -- checkpoints ----------------------------------------------------------------------------------
    def state(self, epoch: int) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "args": dict(self.args),
        }

    def checkpoint_names(self, epoch: int, last: bool) -> list[str]:
        """`checkpoint.pth`, plus `checkpoint<epoch:04d>.pth` by the official rule or for the last epoch."""
        names = ["checkpoint.pth"]
        period = self.cfg.save_period
        if (
            last
            or (epoch + 1) % self.cfg.optim.lr_drop == 0
            or (period and (epoch + 1) % period == 0)
            or (self.cfg.epochs < 100 and (epoch + 1) % 5 == 0)
        ):
            names.append(f"checkpoint{epoch:04d}.pth")
        return names

    def save(self, epoch: int, last: bool) -> list[str]:
        names = self.checkpoint_names(epoch, last)
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            state = self.state(epoch)
            for name in reversed(names):  # the numbered one first: checkpoint.pth last marks the epoch done
                save_checkpoint(self.out_dir / name, state)
        if self.world > 1:
            dist.barrier()
        return names

    def resume(self, path: Path) -> int:
        """Load model, optimizer and schedule; returns the first epoch still to train."""
        state = read_training_checkpoint(path)
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["lr_scheduler"])
        self.start_epoch = int(state["epoch"]) + 1
        self.global_step = int((state.get("args") or {}).get("global_step", 0))
        if self.start_epoch >= self.cfg.epochs:
            raise InputError(
                f"nothing to resume: the checkpoint finished epoch {state['epoch']} of a plan of {self.cfg.epochs} "
                "epochs (raise --epochs to train more)",
                source=str(path),
            )
        return self.start_epoch

    # -- the loop -------------------------------------------------------------------------------------
    def _seed(self, epoch: int) -> tuple[random.Random, np.random.Generator]:
        seed = self.cfg.seed * 1_000_003 + epoch * 1009 + self.rank
        torch.manual_seed(seed)
        return random.Random(seed), np.random.default_rng(seed)

    def _order(self, epoch: int) -> list[int]:
        """A random permutation per epoch, the same on every rank, split across ranks (DistributedSampler)."""
        order = list(range(len(self.dataset)))
        random.Random(self.cfg.seed * 7919 + epoch).shuffle(order)
        per_rank = math.ceil(len(order) / self.world)
        order += order[: per_rank * self.world - len(order)]
        return order[self.rank :: self.world]

    def fit(
        self,
        on_step: Callable[[StepLog], None] | None = None,
        on_epoch: Callable[[EpochResult], None] | None = None,
    ) -> list[EpochResult]:
        self.model.train()
        results = []
        for epoch in range(self.start_epoch, self.cfg.epochs):
            rng, np_rng = self._seed(epoch)
            means = EpochMeans()
            steps = 0
            stopped = False
            for index in self._order(epoch):
                clip = self.dataset.sample(index, rng, np_rng)
                losses, total, norm = self.train_step(clip)
                steps += 1
                self.global_step += 1
                means.add({**losses, "loss": total, "grad_norm": norm})
                if on_step:
                    lrs = [g["lr"] for g in self.optimizer.param_groups]
                    on_step(StepLog(self.global_step, epoch, losses, total, norm, lrs))
                if self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps:
                    stopped = True
                    break
            if not stopped:
                self.scheduler.step()
            self.args["global_step"] = self.global_step
            last = stopped or epoch == self.cfg.epochs - 1
            names = self.save(epoch, last)
            result = EpochResult(epoch, steps, means.means(), names, not stopped)
            results.append(result)
            if on_epoch:
                on_epoch(result)
            if stopped:
                break
        return results
