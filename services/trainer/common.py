"""What every training job shares: the torchrun process group; the per-step logs — log.jsonl (every step,
with learning rates), the `--log-json` contract (one compact object per step: every loss term under its
official name, `loss`, `grad_norm`) and TensorBoard scalars; and the job record around the loop (start,
progress, per-epoch entries and plots, heartbeat, the honest final state)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from shared.errors import InputError
from shared.schemas import EpochRecord, JobRecord, StageState, utcnow

from .jobs import heartbeat, mark_failed, mark_running, read_job, update_job, write_job
from .plots import plot_curves


def set_threads(threads: int | None) -> None:
    """--threads N, else OMP_NUM_THREADS (torch reads it at start), else torch's default."""
    if threads:
        torch.set_num_threads(threads)
    elif os.environ.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def job_device(device: str, threads: int | None, world: int, local_rank: int) -> torch.device:
    """The job's device with `--threads` applied; under torchrun each process takes its own GPU."""
    set_threads(threads)
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{local_rank}"
    return torch.device(device)


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
        record = {**entry.losses, "loss": entry.loss, "grad_norm": _json_number(entry.grad_norm)}
        when = utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self.log.write(json.dumps({"time": when, "step": entry.step, "epoch": entry.epoch, **record, "lr": entry.lrs})
                       + "\n")  # fmt: skip
        self.log.flush()
        if self.contract:
            self.contract.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.contract.flush()
        if self.board:
            for name, value in record.items():
                if value is not None:
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


def epoch_line(result, planned_epochs: int, done: int, planned_steps: int | None, seconds: float, val) -> str:
    """`epoch 3/12: loss 24.17, 0.52 s/step, ETA 4m10s[, HOTA 0.6123, ...]` (the validation's overall values)."""
    per_step = seconds / max(1, result.steps)
    left = (planned_steps - done) * per_step if planned_steps else (planned_epochs - result.epoch - 1) * seconds
    loss = result.mean_losses.get("loss")
    parts = [f"epoch {result.epoch + 1}/{planned_epochs}: loss {loss:.4g}" if loss is not None else
             f"epoch {result.epoch + 1}/{planned_epochs}: loss n/a", f"{per_step:.2f} s/step",
             f"ETA {_duration(max(0.0, left))}"]  # fmt: skip
    parts += [f"{name} {value:.4g}" for name, value in (val or {}).items() if "/" not in name]  # not per class
    return ", ".join(parts)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _json_number(value: float) -> float | None:
    """null for inf/NaN (a float16 step the GradScaler skipped has an infinite grad norm): JSON has neither."""
    return value if math.isfinite(value) else None


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def run_guarded(folder: Path, rank: int, body: Callable[[], JobRecord]) -> JobRecord:
    """Run a job's body; any error marks the record failed with the reason (rank 0 writes) and propagates."""
    try:
        return body()
    except BaseException as exc:
        if rank == 0 and (folder / "job.json").is_file():
            reason = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
            mark_failed(folder, "interrupted" if isinstance(exc, KeyboardInterrupt) else reason)
        raise


# what the API writes into a job's record before a worker takes it (names, notes, the task to send again)
QUEUED_FIELDS = ("created", "name", "tags", "note", "task", "queued", "attempts", "grid")


def open_record(folder: Path, resume: bool, fresh: Callable[[], JobRecord]) -> JobRecord:
    """The record to run under: the folder's own to resume (not a succeeded one), else a new one (not over a
    running job)."""
    if resume:
        record = read_job(folder)
        if record.state == StageState.succeeded:
            raise InputError("nothing to resume: the job already succeeded", source=str(folder / "job.json"))
        return record
    queued = read_job(folder) if (folder / "job.json").is_file() else None
    if queued is not None and queued.state == StageState.running:
        raise InputError("a job is running in this folder", source=str(folder))
    record = fresh()
    if queued is not None and queued.state == StageState.pending:  # the API's record: its name and task stay
        record = record.model_copy(update={key: getattr(queued, key) for key in QUEUED_FIELDS})
    return record


class JobDriver:
    """The job record around a training loop, the same for every model: rank 0 writes the record, step logs,
    plots and heartbeat; every rank calls the same hooks (validation runs on rank 0, the others wait)."""

    def __init__(
        self,
        folder: Path,
        rank: int,
        world: int,
        log_json: Path | None,
        resume: bool,
        on_progress: Callable[[int, int | None], None] | None,
        say: Callable[[str], None] | None = None,
    ):
        self.folder, self.world, self.resume = folder, world, resume
        self.writer = rank == 0
        self.log_json, self.on_progress, self.say = log_json, on_progress, say
        self.steps: StepWriter | None = None
        self.planned_steps: int | None = None
        self.planned_epochs = 0
        self._epoch_started = time.monotonic()

    def start(
        self, record: JobRecord, planned_steps: int, done: int, start_epoch: int, change: Callable[[JobRecord], None]
    ) -> None:
        self.planned_steps, self.planned_epochs = planned_steps, record.planned_epochs
        self._epoch_started = time.monotonic()
        if not self.writer:
            return

        def begin(r: JobRecord) -> None:
            mark_running(r)
            r.planned_steps = r.progress.total = planned_steps
            r.progress.done = done
            r.epochs = [e for e in r.epochs if e.epoch < start_epoch]
            change(r)

        if not self.resume or not (self.folder / "job.json").is_file():
            write_job(self.folder, record)
        update_job(self.folder, begin)
        self.steps = StepWriter(self.folder, self.log_json, tensorboard_available(), self.resume)

    def on_step(self, entry) -> None:
        if self.steps:
            self.steps.step(entry)
        if self.on_progress:
            self.on_progress(entry.step, self.planned_steps)
        if self.writer and entry.step % 10 == 0:
            update_job(self.folder, lambda r: setattr(r.progress, "done", entry.step))

    def on_epoch(self, result, validate: Callable[[], dict[str, float] | None], global_step: int) -> None:
        val = validate() if self.writer else None
        if self.world > 1:
            dist.barrier()
        if not self.writer:
            return
        self.steps.epoch(result.epoch, result.mean_losses, val)

        def change(r: JobRecord) -> None:
            r.epochs.append(
                EpochRecord(
                    epoch=result.epoch,
                    steps=result.steps,
                    losses=result.mean_losses,
                    val=val,
                    checkpoints=result.checkpoints,
                    complete=result.complete,
                )
            )
            r.finished_epochs = result.epoch + 1 if result.complete else r.finished_epochs
            r.checkpoints = sorted(set(r.checkpoints) | set(result.checkpoints))
            r.progress.done = global_step

        plot_curves(update_job(self.folder, change), self.folder / "plots")
        if self.say is not None:  # one line an epoch: what a log file (no progress bar) shows
            self.say(epoch_line(result, self.planned_epochs, global_step, self.planned_steps,
                                time.monotonic() - self._epoch_started, val))  # fmt: skip
        self._epoch_started = time.monotonic()

    def train(self, fit: Callable[[], object]) -> None:
        try:
            with heartbeat(self.folder) if self.writer else contextlib.nullcontext():
                fit()
        finally:
            if self.steps:
                self.steps.close()

    def finish(self, max_steps: int | None, global_step: int) -> JobRecord:
        """`succeeded` only when the plan finished and its checkpoint is on disk; every rank returns rank 0's."""

        def end(r: JobRecord) -> None:
            done = (max_steps is not None and global_step >= max_steps) or r.finished_epochs >= r.planned_epochs
            if done and (self.folder / "checkpoint.pth").is_file():
                r.state, r.error = StageState.succeeded, None
            else:
                r.state = StageState.failed
                r.error = f"training stopped after {r.finished_epochs} of {r.planned_epochs} epochs"
            r.finished = utcnow()

        record = update_job(self.folder, end) if self.writer else None
        if self.world > 1:
            dist.barrier()  # every rank reports the state rank 0 recorded
        return record if self.writer else read_job(self.folder)
