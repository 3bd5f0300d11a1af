"""Curves of a training job over epochs: mean loss, and the validation metrics when validated (HOTA / IDF1 /
MOTA for MOTRv2, COCO mAP / mAP50 / AR for D-FINE)."""

from __future__ import annotations

from pathlib import Path

from shared.atomic import atomic_open
from shared.schemas import JobRecord


def plot_curves(record: JobRecord, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    epochs = [e for e in record.epochs if e.losses]
    written = []
    panels = [("loss.png", "mean training loss", {"loss": [e.losses.get("loss") for e in epochs]})]
    validated = [e for e in epochs if e.val]
    if validated:
        keys = ("mAP", "mAP50", "AR") if record.model == "dfine" else ("HOTA", "IDF1", "MOTA")
        panels.append(("val.png", "validation", {k: [e.val.get(k) for e in validated] for k in keys}))
    for name, title, series in panels:
        xs = [e.epoch for e in (validated if name == "val.png" else epochs)]
        fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
        for label, ys in series.items():
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_title(f"{title} — job {record.job}")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend()
        fig.tight_layout()
        path = folder / name
        with atomic_open(path, "wb") as handle:
            fig.savefig(handle, format="png")
        plt.close(fig)
        written.append(path)
    return written
