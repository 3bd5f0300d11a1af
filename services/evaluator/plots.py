"""PNG plots of a metrics report (matplotlib, Agg backend): readable at a glance, safe for
negative MOTA (axes extend below zero) and for empty inputs (panels say 'no data'). Every figure is titled
with what was scored (the run and its files, given by the caller); TrackEval's MOTA and the group's framewise
MOTA (no ID switches) are labelled as what they are; object counts get integer ticks."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.ticker import MaxNLocator

from shared.plotting import pyplot, save_png
from shared.schemas import MetricsReport

plt = pyplot()

GREEN, RED, ORANGE, BLUE, GREY = "#27ae60", "#c0392b", "#e67e22", "#2980b9", "#7f8c8d"
SCORES = ("HOTA", "DetA", "AssA", "MOTA", "IDF1")
GROUP_SCORES = ("mota", "precision", "recall", "f1_score", "avg_iou")
# what each number is, where two definitions of one name sit side by side
LABELS = {"MOTA": "TrackEval\nMOTA", "IDF1": "TrackEval\nIDF1", "mota": "framewise\nMOTA (no IDSW)",
          "precision": "framewise\nprecision", "recall": "framewise\nrecall", "f1_score": "framewise\nF1",
          "avg_iou": "framewise\navg IoU"}  # fmt: skip


def _save(fig, path: Path, title: str = "") -> None:
    if title:
        fig.suptitle(title, fontsize=10)
    save_png(fig, path)


def _bars(ax, names, values, colours, title, fmt="{:.3f}"):
    bars = ax.bar(names, values, color=colours)
    low = min([0.0, *values])
    ax.set_ylim(low - 0.1 if low < 0 else 0, max([1.0, *values]) * 1.1)
    ax.axhline(0, color="black", linewidth=0.8)
    for bar, value in zip(bars, values, strict=True):
        y = max(value, 0) + 0.02 * ax.get_ylim()[1]
        ax.text(bar.get_x() + bar.get_width() / 2, y, fmt.format(value), ha="center", va="bottom", fontsize=9)
    ax.set_title(title)


def _no_data(ax, title):
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color=GREY)
    ax.set_title(title)


def _overview(ax, report: MetricsReport):
    # short tick labels; the group under them says which definition each is (TrackEval's MOTA counts ID
    # switches, the group's framewise MOTA does not)
    names = [*SCORES, "MOTA\n(no IDSW)", "precision", "recall", "F1", "avg IoU"]
    values = [float(report.trackeval.get(n, 0.0)) for n in SCORES] + [
        float(report.framewise.get(n, 0.0)) for n in GROUP_SCORES
    ]
    colours = [BLUE] * len(SCORES) + [GREEN] * len(GROUP_SCORES)
    _bars(ax, names, values, colours, f"Scores at IoU {report.iou_threshold}")
    ax.tick_params(axis="x", labelsize=9)
    ax.set_ylim(ax.get_ylim()[0], ax.get_ylim()[1] + 0.12)  # a band above the bars for the two group names
    for middle, text, colour in ((2, "TrackEval", BLUE), (7, "the group's framewise block", GREEN)):
        ax.text(middle, 0.97, text, transform=ax.get_xaxis_transform(), ha="center", va="top", color=colour,
                fontweight="bold", fontsize=9)  # fmt: skip


def _hota_curve(ax, report: MetricsReport):
    alphas = report.trackeval.get("alphas", [])
    if not alphas:
        return _no_data(ax, "HOTA vs alpha")
    for name, colour in (("HOTA", BLUE), ("DetA", GREEN), ("AssA", ORANGE), ("LocA", GREY)):
        ax.plot(alphas, report.trackeval[f"{name}_alpha"], marker="o", markersize=3, color=colour, label=name)
    ax.set_xlabel("localisation threshold alpha")
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title("HOTA vs alpha")


def _breakdown(ax, report: MetricsReport):
    t = report.trackeval
    names = ["TP", "FP", "FN", "ID switches", "Frag"]
    values = [float(t.get(k, 0)) for k in ("CLR_TP", "CLR_FP", "CLR_FN", "IDSW", "Frag")]
    bars = ax.bar(names, values, color=[GREEN, RED, ORANGE, BLUE, GREY])
    total = max(1.0, values[0] + values[1] + values[2])
    ax.set_ylim(0, max(1.0, *values) * 1.2)  # room for the labels
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    for bar, value, name in zip(bars, values, names, strict=True):
        share = f"\n{100 * value / total:.1f}%" if name in ("TP", "FP", "FN") else ""
        ax.text(bar.get_x() + bar.get_width() / 2, value, f"{int(value)}{share}", ha="center", va="bottom")
    ax.set_title("CLEAR breakdown (TrackEval)")


def _per_frame_f1(ax, report: MetricsReport):
    if not report.per_frame:
        return _no_data(ax, "Per-frame F1")
    frames = [f["frame"] for f in report.per_frame]
    f1 = [f["f1"] for f in report.per_frame]
    ax.plot(frames, f1, color=BLUE)
    ax.fill_between(frames, f1, alpha=0.2, color=BLUE)
    mean = sum(f1) / len(f1)
    ax.axhline(mean, color=RED, linestyle="--", label=f"mean F1 {mean:.3f}")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("frame")
    ax.legend()
    ax.set_title("Per-frame F1 (frames in both files)")


def _losses(ax, report: MetricsReport):
    names = list(report.losses)
    _bars(ax, [n.replace("_", " ") for n in names], [float(report.losses[n]) for n in names], ORANGE,
          "The group's losses (lower is better)", "{:.4f}")  # fmt: skip


def _single_panel(draw, size: tuple[int, int]):
    """A plot function drawing one panel on its own figure."""

    def plot(report: MetricsReport, path: Path, title: str = "") -> None:
        fig, ax = plt.subplots(figsize=size)
        draw(ax, report)
        _save(fig, path, title)

    return plot


def plot_per_frame(report: MetricsReport, path: Path, title: str = "") -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    if report.per_frame:
        frames = [f["frame"] for f in report.per_frame]
        gt, pred = [f["gt"] for f in report.per_frame], [f["pred"] for f in report.per_frame]
        top.plot(frames, gt, "o-", color=GREEN, markersize=3, label="ground truth")
        top.plot(frames, pred, "s-", color=BLUE, markersize=3, label="predictions")
        top.fill_between(frames, gt, pred, color=RED, alpha=0.15)
        top.set_ylabel("objects per frame")
        top.set_ylim(0, max(*gt, *pred) + 1)  # counts from zero: a one-object dip is not a cliff
        top.yaxis.set_major_locator(MaxNLocator(integer=True))
        top.legend()
        top.set_title("Ground truth vs predictions per frame")
    else:
        _no_data(top, "Ground truth vs predictions per frame")
    _per_frame_f1(bottom, report)
    _save(fig, path, title)


def plot_dashboard(report: MetricsReport, path: Path, title: str = "") -> None:
    fig, axes = plt.subplots(2, 2, figsize=(16, 10))
    _overview(axes[0, 0], report)
    _hota_curve(axes[0, 1], report)
    _breakdown(axes[1, 0], report)
    _per_frame_f1(axes[1, 1], report)
    fig.suptitle(f"motpipe evaluation: {title}" if title else "motpipe evaluation", fontsize=14)
    save_png(fig, path)


PLOTS = {
    "metrics_overview": _single_panel(_overview, (11, 5)),
    "losses": _single_panel(_losses, (10, 5)),
    "per_frame": plot_per_frame,
    "breakdown": _single_panel(_breakdown, (8, 5)),
    "hota_alpha": _single_panel(_hota_curve, (8, 5)),
    "dashboard": plot_dashboard,
}


def write_plots(report: MetricsReport, folder: str | os.PathLike, title: str = "") -> list[str]:
    """Write every plot of one report, each titled `title` (what was scored); returns the file names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, draw in PLOTS.items():
        draw(report, folder / f"{name}.png", title)
    return [f"{name}.png" for name in PLOTS]


def plot_comparison(reports: list[MetricsReport], labels: list[str], path: str | os.PathLike, title: str = "") -> None:
    """Grouped bars of the main scores for several runs (`labels` name them)."""
    names = [*SCORES, "mota", "f1_score"]
    fig, ax = plt.subplots(figsize=(max(8, 2 * len(names)), 5))
    width = 0.8 / max(1, len(reports))
    low = 0.0
    for i, (report, label) in enumerate(zip(reports, labels, strict=True)):
        values = [float(report.trackeval.get(n, report.framewise.get(n, 0.0))) for n in names]
        low = min(low, *values)
        ax.bar([k + i * width for k in range(len(names))], values, width, label=label)
    ax.set_xticks([k + width * (len(reports) - 1) / 2 for k in range(len(names))], [LABELS.get(n, n) for n in names])
    ax.set_ylim(low - 0.1 if low < 0 else 0, 1.1)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.legend()
    ax.set_title("Comparison")
    _save(fig, Path(path), title)


def plot_sweep(reports: list[MetricsReport], path: str | os.PathLike, title: str = "") -> None:
    """MOTA, IDF1, precision, recall and F1 against the IoU threshold."""
    fig, ax = plt.subplots(figsize=(9, 5))
    thresholds = [r.iou_threshold for r in reports]
    for name, colour in (("MOTA", BLUE), ("IDF1", ORANGE)):
        ax.plot(thresholds, [r.trackeval[name] for r in reports], "o-", color=colour, label=f"TrackEval {name}")
    for name, colour in (("precision", GREEN), ("recall", RED), ("f1_score", GREY)):
        label = LABELS[name].replace("\n", " ")
        ax.plot(thresholds, [r.framewise[name] for r in reports], "s--", color=colour, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("IoU threshold")
    ax.legend()
    ax.set_title("IoU-threshold sweep")
    _save(fig, Path(path), title)
