"""A training job's figures: `loss.png`, the training loss at every step (from `log.jsonl`) with a smoothed
line, and `val.png`, the per-epoch validation (HOTA / IDF1 / MOTA for MOTRv2, COCO mAP / mAP50 / AR for D-FINE)
on its own axis. Titles name the job and its files; a validation that is still all zero says "no detections
yet" instead of drawing flat lines on a meaningless ±0.04 axis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared.plotting import pyplot, save_png
from shared.schemas import JobRecord


def job_title(record: JobRecord) -> str:
    """`motrv2 job 3fa2 “minimal” · weights motrv2_dancetrack.pth · runs 9c0e, 77ab`: the job and its files."""
    data = record.data
    parts = [f"{record.model} job {record.job}" + (f" “{record.name}”" if record.name else "")]
    if data.get("weights"):
        parts.append(f"weights {Path(str(data['weights'])).name}")
    if data.get("runs"):
        runs = list(data["runs"])
        parts.append("runs " + ", ".join(runs[:3]) + (f" +{len(runs) - 3}" if len(runs) > 3 else ""))
    for key in ("root", "det_db", "coco", "images"):
        if data.get(key):
            parts.append(f"{key} {Path(str(data[key])).name}")
    return " · ".join(parts)


def read_step_losses(log: Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, loss) from `log.jsonl`; a step logged twice (a resumed job) counts once, its last entry."""
    losses: dict[int, float] = {}
    if log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut by a kill
                continue
            if isinstance(entry.get("loss"), int | float):
                losses[int(entry["step"])] = float(entry["loss"])
    steps = np.array(sorted(losses), dtype=float)
    return steps, np.array([losses[int(s)] for s in steps], dtype=float)


def smoothed(values: np.ndarray) -> np.ndarray:
    """A centred running mean over ~5 % of the steps (at least 1), the ends averaged over what exists."""
    window = max(1, len(values) // 20)
    kernel = np.ones(window)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones(len(values)), kernel, "same")


def _loss_figure(record: JobRecord, folder: Path, title: str) -> Path:
    plt = pyplot()
    steps, loss = read_step_losses(folder.parent / "log.jsonl")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if len(steps):
        ax.plot(steps, loss, color="#3b7dd8", alpha=0.35, linewidth=0.8, label="every step")
        ax.plot(steps, smoothed(loss), color="#1a4f9c", linewidth=2, label="smoothed")
        ax.set_xlabel("step")
        ax.legend()
    else:  # no step log (a job folder copied without it): the per-epoch means
        epochs = [e for e in record.epochs if e.losses.get("loss") is not None]
        ax.plot([e.epoch + 1 for e in epochs], [e.losses["loss"] for e in epochs], marker="o")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("training loss")
    ax.set_title(f"{title}\ntraining loss", fontsize=9)
    ax.grid(alpha=0.3)
    return save_png(fig, folder / "loss.png")


def _val_figure(record: JobRecord, folder: Path, title: str) -> Path | None:
    validated = [e for e in record.epochs if e.val]
    if not validated:
        return None
    plt = pyplot()
    keys = ("mAP", "mAP50", "AR") if record.model == "dfine" else ("HOTA", "IDF1", "MOTA")
    series = {k: [e.val.get(k) for e in validated] for k in keys}
    xs = [e.epoch + 1 for e in validated]
    values = [v for vs in series.values() for v in vs if v is not None]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    if not values or not any(values):
        what = "detections" if record.model == "dfine" else "tracks"
        ax.text(0.5, 0.5, f"no {what} yet: every validation metric is 0 after epoch {xs[-1]}",
                ha="center", va="center", transform=ax.transAxes, color="#7f8c8d")  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        for name, ys in series.items():
            ax.plot(xs, ys, marker="o", label=name)
        low, high = min(values), max(values)
        pad = max(0.02, 0.1 * (high - low))
        ax.set_ylim(low - pad, high + pad)
        ax.legend()
        ax.set_xlabel("epoch")
        ax.set_xticks(xs if len(xs) <= 12 else xs[:: len(xs) // 12 + 1])
    ax.set_title(f"{title}\nvalidation after each epoch", fontsize=9)
    ax.grid(alpha=0.3)
    return save_png(fig, folder / "val.png")


def plot_curves(record: JobRecord, folder: Path) -> list[Path]:
    """`folder` is the job's `plots/`; its parent holds `log.jsonl`."""
    folder.mkdir(parents=True, exist_ok=True)
    title = job_title(record)
    return [p for p in (_loss_figure(record, folder, title), _val_figure(record, folder, title)) if p]
