"""One official D-FINE training iteration (det_engine.train_one_epoch): forward (bf16 autocast on request,
criterion outside it), weighted total, backward (GradScaler on CUDA with autocast), global gradient-norm
clip, AdamW step, EMA update, warmup step. The gradient norm reported is the one before clipping."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import nn

from .criterion import DFINECriterion
from .denoising import make_groups
from .forward import train_forward
from .optim import LinearWarmup, ModelEMA


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the job fails with this reason."""


@dataclass
class StepResult:
    losses: dict[str, float]
    loss: float
    grad_norm: float


class StepRunner:
    def __init__(
        self,
        model: nn.Module,
        criterion: DFINECriterion,
        optimizer: torch.optim.Optimizer,
        warmup: LinearWarmup,
        ema: ModelEMA,
        clip_max_norm: float = 0.1,
        num_denoising: int = 100,
        autocast: bool = False,
        forward: nn.Module | None = None,
    ):
        self.model, self.criterion, self.optimizer = model, criterion, optimizer
        self.warmup, self.ema, self.clip_max_norm = warmup, ema, clip_max_norm
        self.num_denoising, self.autocast = num_denoising, autocast
        self.forward = forward  # the DDP wrapper of a `TrainModule`, when distributed
        self.params = [p for p in model.parameters() if p.requires_grad]
        cuda = next(model.parameters()).device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if autocast and cuda else None

    def outputs(self, images: torch.Tensor, targets: list[dict]) -> dict:
        dn = None
        if self.num_denoising > 0:
            dn = make_groups(targets, self.criterion.num_classes, self.model.decoder.num_queries, self.num_denoising)
        if self.forward is not None:
            return self.forward(images, dn)
        return train_forward(self.model, images, dn)

    def step(self, images: torch.Tensor, targets: list[dict], source: str = "") -> StepResult:
        device = images.device
        # the official AMP: float16 + GradScaler on CUDA; the same code on a CPU autocasts to bfloat16
        half = torch.float16 if device.type == "cuda" else torch.bfloat16
        context = torch.autocast(device.type, dtype=half) if self.autocast else contextlib.nullcontext()
        with context:
            outputs = self.outputs(images, targets)
        with torch.autocast(device.type, enabled=False):
            outputs = _to_float(outputs) if self.autocast else outputs
            losses = self.criterion(outputs, targets)
            total = sum(losses.values())
        values = torch.stack([v.detach().double() for v in (*losses.values(), total)]).tolist()
        terms, total_value = dict(zip(losses, values[:-1], strict=True)), values[-1]
        if not math.isfinite(total_value):
            bad = {k: v for k, v in terms.items() if not math.isfinite(v)}
            raise TrainingError(f"loss is {total_value} on {source}: non-finite terms {bad}")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:  # unscaled before clipping, as officially
            self.scaler.scale(total).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            total.backward()
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.clip_max_norm if self.clip_max_norm > 0 else math.inf)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.ema.update(self.model)
        self.warmup.step()
        return StepResult(terms, total_value, float(norm))


def _to_float(outputs):
    """bf16 autocast outputs to float32 for the criterion (the official criterion runs outside autocast)."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.is_floating_point() and outputs.dtype != torch.float64 else outputs
    if isinstance(outputs, dict):
        return {k: _to_float(v) for k, v in outputs.items()}
    if isinstance(outputs, list):
        return [_to_float(v) for v in outputs]
    return outputs


class TrainModule(nn.Module):
    """The model's train-mode forward as a module, so DistributedDataParallel can wrap it."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images, dn=None):
        return train_forward(self.model, images, dn)
