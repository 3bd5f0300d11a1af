"""The D-FINE epoch loop (the official `fit` for stage 1): batches of samples through the train-time
pipeline, the official step, the per-epoch MultiStepLR after warmup, checkpoints in the official layout,
resume.

Randomness is re-seeded at the start of every epoch from (seed, epoch, rank) — sample order, multi-scale
sizes, denoising noise — and each sample's augmentation from (that seed, its position), so an epoch resumed
from the previous epoch's checkpoint is the epoch an uninterrupted run trains, with any number of loader
workers. Checkpoints hold `date`, `last_epoch`, `model`, `ema` ({module, updates}),
`optimizer`, `lr_scheduler`, `lr_warmup_scheduler` (and `scaler` under AMP) like the official `last.pth`,
plus `motpipe` (size, classes, global step): all plain types, so `torch.load(weights_only=True)` reads
them. They are written to a temporary name, fsynced and renamed: a killed process never leaves a torn file.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.distributed as dist

from shared.errors import InputError
from shared.training import EpochMeans, EpochResult, StepLog, rank_world, save_checkpoint

from .criterion import DFINECriterion
from .data import Sample
from .optim import LinearWarmup, ModelEMA, OptimConfig, build_optimizer
from .step import StepRunner
from .transforms import AugmentConfig, EpochSamples, batches, collate, multiscale_sizes, pipeline


@dataclass
class LoopConfig:
    epochs: int = 10
    batch_size: int = 4
    max_steps: int | None = None
    seed: int = 0
    img_size: int = 640
    multiscale: bool = False  # the official collate for sizes S..X (not N)
    num_denoising: int = 100
    autocast: bool = False
    dtype: torch.dtype = torch.float32
    save_period: int = 12  # also keep checkpoint<epoch:04d>.pth every N epochs (the official checkpoint_freq)
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    workers: int = 0  # loader processes (0: load in the training process)


class DetTrainer:
    def __init__(
        self,
        model,
        samples: list[Sample],
        cfg: LoopConfig,
        out_dir: Path,
        device: torch.device,
        meta: dict,
        wrapped: torch.nn.Module | None = None,
    ):
        self.model, self.samples, self.cfg = model, samples, cfg
        self.out_dir, self.device, self.meta = Path(out_dir), device, dict(meta)
        self.optimizer = build_optimizer(model, cfg.optim)
        self.warmup = LinearWarmup(self.optimizer, cfg.optim.warmup_steps)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=[500], gamma=0.1)
        self.ema = ModelEMA(model, cfg.optim.ema_decay, cfg.optim.ema_warmups)
        self.criterion = DFINECriterion(model.num_classes)
        self.runner = StepRunner(
            model,
            self.criterion,
            self.optimizer,
            self.warmup,
            self.ema,
            cfg.optim.clip_max_norm,
            cfg.num_denoising,
            cfg.autocast,
            wrapped,
        )
        self.start_epoch, self.global_step = 0, 0
        self.rank, self.world = rank_world()

    # -- checkpoints ----------------------------------------------------------------------------------
    def state(self, epoch: int) -> dict:
        state = {
            "date": datetime.now(UTC).isoformat(),
            "last_epoch": epoch,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_scheduler": self.scheduler.state_dict(),
            "lr_warmup_scheduler": self.warmup.state_dict(),
            "motpipe": {**self.meta, "global_step": self.global_step},
        }
        if self.runner.scaler is not None:
            state["scaler"] = self.runner.scaler.state_dict()
        return state

    def save(self, epoch: int, last: bool) -> list[str]:
        names = ["checkpoint.pth"]
        if last or (self.cfg.save_period and (epoch + 1) % self.cfg.save_period == 0):
            names.append(f"checkpoint{epoch:04d}.pth")
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            state = self.state(epoch)
            for name in reversed(names):  # checkpoint.pth last: it marks the epoch done
                save_checkpoint(self.out_dir / name, state)
        if self.world > 1:
            dist.barrier()
        return names

    def resume(self, path: Path) -> int:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise InputError("cannot resume: no checkpoint", source=str(path)) from None
        missing = [
            k
            for k in ("model", "ema", "optimizer", "lr_scheduler", "lr_warmup_scheduler", "last_epoch")
            if k not in state
        ]
        if missing:
            raise InputError(f"cannot resume: the checkpoint has no {missing}", source=str(path))
        self.model.load_state_dict(state["model"], strict=True)
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["lr_scheduler"])
        self.warmup.load_state_dict(state["lr_warmup_scheduler"])
        if self.runner.scaler is not None and "scaler" in state:
            self.runner.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["last_epoch"]) + 1
        self.global_step = int((state.get("motpipe") or {}).get("global_step", 0))
        if self.start_epoch >= self.cfg.epochs:
            raise InputError(
                f"nothing to resume: the checkpoint finished epoch {state['last_epoch']} of a plan of "
                f"{self.cfg.epochs} epochs (raise --epochs to train more)",
                source=str(path),
            )
        return self.start_epoch

    # -- the loop -------------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.samples) / self.world)
        return math.ceil(per_rank / self.cfg.batch_size)

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.samples)))
        random.Random(self.cfg.seed * 7919 + epoch).shuffle(order)
        per_rank = math.ceil(len(order) / self.world)
        order += order[: per_rank * self.world - len(order)]
        return order[self.rank :: self.world]

    def fit(
        self, on_step: Callable[[StepLog], None] | None = None, on_epoch: Callable[[EpochResult], None] | None = None
    ) -> list[EpochResult]:
        self.model.train()
        sizes = multiscale_sizes(self.cfg.img_size) if self.cfg.multiscale else None
        stop = self.cfg.augment.stop_epoch if self.cfg.augment else 0
        results = []
        for epoch in range(self.start_epoch, self.cfg.epochs):
            seed = self.cfg.seed * 1_000_003 + epoch * 1009 + self.rank
            torch.manual_seed(seed)
            rng = random.Random(seed)
            transform = pipeline(self.cfg.augment, epoch, self.cfg.img_size)
            order = self._order(epoch)
            loaded = batches(EpochSamples(self.samples, order, transform, seed), self.cfg.batch_size, self.cfg.workers)
            means = EpochMeans()
            steps, stopped = 0, False
            for start, items in zip(range(0, len(order), self.cfg.batch_size), loaded, strict=True):
                chunk = [self.samples[i] for i in order[start : start + self.cfg.batch_size]]
                images, targets = collate(items, sizes if epoch < stop else None, rng)
                images = images.to(self.device, self.cfg.dtype)
                targets = [
                    {"boxes": t["boxes"].to(self.device, self.cfg.dtype), "labels": t["labels"].to(self.device)}
                    for t in targets
                ]
                result = self.runner.step(images, targets, ", ".join(s.source for s in chunk))
                steps += 1
                self.global_step += 1
                means.add({**result.losses, "loss": result.loss, "grad_norm": result.grad_norm})
                if on_step:
                    lrs = [g["lr"] for g in self.optimizer.param_groups]
                    on_step(StepLog(self.global_step, epoch, result.losses, result.loss, result.grad_norm, lrs))
                if self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps:
                    stopped = True
                    break
            if not stopped and self.warmup.finished():
                self.scheduler.step()
            last = stopped or epoch == self.cfg.epochs - 1
            names = self.save(epoch, last)
            result = EpochResult(epoch, steps, means.means(), names, not stopped)
            results.append(result)
            if on_epoch:
                on_epoch(result)
            if stopped:
                break
        return results
