"""A sweep's figures: `ranked.png` (HOTA per combination, best first, the axis zoomed to the data, wrapped
labels with short values) and, when two or more parameters vary, `heatmap.png` (the two that vary most; a
third as one facet per value; cell labels with enough digits to tell their colours apart, in black or white
by the cell's colour)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from shared.plotting import distinct_digits, pyplot, save_png, short, text_colour_on


def combination_label(params: dict) -> str:
    return ", ".join(f"{k}={short(v)}" for k, v in params.items())


def _sort_key(text: str) -> tuple:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)


def plot_ranked(done: list[dict], title: str, path: Path) -> Path:
    labels = [textwrap.fill(combination_label(r["params"]), 40) for r in done]
    lines = sum(label.count("\n") + 1 for label in labels)
    values = [r["HOTA"] for r in done]
    plt = pyplot()
    # 7 in: shown in half the page's width, its labels still read; the title wraps to it instead of widening it
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.3 * max(lines, 1) + 0.1 * len(done)), layout="constrained")
    ax.barh(labels[::-1], values[::-1], color="#3b7dd8")
    if values:
        low, high = min(values), max(values)
        margin = max(0.1 * (high - low), 0.01)
        ax.set_xlim(max(0.0, low - margin), min(1.0, high + margin) + 0.25 * margin)
        for y, value in enumerate(values[::-1]):
            ax.text(value, y, f" {value:.4f}", va="center", fontsize=8)
    ax.set_xlabel("HOTA (axis zoomed to the values)")
    ax.set_title(f"{textwrap.fill(title, 84)}\ncombinations ranked by HOTA", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save_png(fig, path)


def _grid(done, rows_key, cols_key, ys, xs) -> np.ndarray:
    values = np.full((len(ys), len(xs)), np.nan)
    for row in done:
        i, j = ys.index(str(row["params"][rows_key])), xs.index(str(row["params"][cols_key]))
        values[i, j] = np.nanmax([values[i, j], row["HOTA"]])
    return values


def plot_heatmap(done: list[dict], varied: list[str], seen: dict[str, list[str]], title: str, path: Path) -> Path:
    """`varied`: two or three parameter names (rows, columns, facets); each cell the best HOTA over the
    parameters not shown."""
    rows_key, cols_key = varied[:2]
    ys, xs = (sorted(seen[k], key=_sort_key) for k in (rows_key, cols_key))
    facet_key = varied[2] if len(varied) > 2 else None
    facets = sorted(seen[facet_key], key=_sort_key) if facet_key else [None]
    grids = [_grid([r for r in done if f is None or str(r["params"][facet_key]) == f], rows_key, cols_key, ys, xs)
             for f in facets]  # fmt: skip
    plt = pyplot()
    everything = np.concatenate([g.ravel() for g in grids])
    low, high = np.nanmin(everything), np.nanmax(everything)
    digits = distinct_digits(everything)
    width = 1.0 + (0.35 + 0.12 * digits) * len(xs)
    fig_width = max(6.0, 1.6 + width * len(facets))  # room for the title, wrapped to it
    fig, axes = plt.subplots(1, len(facets), figsize=(fig_width, 1.4 + 0.5 * len(ys)), squeeze=False,
                             layout="constrained")  # makes room for the wrapped title  # fmt: skip
    cmap = plt.get_cmap("viridis")
    norm = plt.Normalize(low, high if high > low else low + 1e-9)
    for ax, facet, values in zip(axes[0], facets, grids, strict=True):
        image = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto")
        ax.set_xticks(range(len(xs)), [short(_number(x)) for x in xs], rotation=30 if len(xs) > 4 else 0)
        ax.set_yticks(range(len(ys)), [short(_number(y)) for y in ys])
        ax.set_xlabel(cols_key)
        if ax is axes[0][0]:  # the facets share their rows
            ax.set_ylabel(rows_key)
        else:
            ax.set_yticklabels([])
        if facet is not None:
            ax.set_title(f"{facet_key}={short(_number(facet))}", fontsize=9)
        for (i, j), value in np.ndenumerate(values):
            if np.isfinite(value):
                colour = text_colour_on(cmap(norm(value)))
                ax.text(j, i, f"{value:.{digits}f}", ha="center", va="center", color=colour, fontsize=8)
            else:
                ax.text(j, i, "not run", ha="center", va="center", color="grey", fontsize=7)
    fig.colorbar(image, ax=list(axes[0]), label="HOTA")
    cells = sum(int(np.isfinite(g).sum()) for g in grids)
    what = "HOTA per combination" if cells == len(done) else "each cell: the best HOTA over the parameters not shown"
    fig.suptitle(textwrap.fill(title, int(fig_width * 12)) + "\n" + what, fontsize=10)
    return save_png(fig, path)


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def plot_sweep(rows: list[dict], grid: dict[str, list], folder: Path, title: str, ranked) -> list[Path]:
    """`ranked.png` and, with two or more varied parameters, `heatmap.png`; `title` names the sweep and its
    files; `ranked` orders rows best first."""
    folder.mkdir(parents=True, exist_ok=True)
    done = [r for r in ranked(rows) if r.get("HOTA") is not None]
    written = [plot_ranked(done, title, folder / "ranked.png")]
    # the parameters that vary most among the evaluated rows (grid values, or what a search drew)
    seen = {k: list(dict.fromkeys(str(r["params"][k]) for r in done)) for k in grid}
    varied = sorted((k for k in grid if len(seen[k]) > 1), key=lambda k: -len(seen[k]))[:3]
    if len(varied) >= 2:
        written.append(plot_heatmap(done, varied, seen, title, folder / "heatmap.png"))
    return written
