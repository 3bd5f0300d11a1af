"""What every motpipe figure shares: matplotlib on the Agg backend, atomic PNG writes, numbers short enough to
read (≤ 4 significant digits) yet distinct where the colours they label differ, and cell text that contrasts
with its cell."""

from __future__ import annotations

from pathlib import Path

from shared.atomic import atomic_open
from shared.contrast import black_text_on


def pyplot():
    """matplotlib.pyplot on the Agg backend, imported on first use (importing it costs ~0.5 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, dpi: int = 110) -> Path:
    """Write `fig` atomically (a reader never sees half a PNG) and close it."""
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return path


def short(value) -> str:
    """A parameter value as a label: numbers with at most 4 significant digits, paths by their file name."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = str(value)
        return Path(text).name if "/" in text else text
    return f"{value:.4g}"


def distinct_digits(values, least: int = 3, most: int = 6) -> int:
    """The fewest decimals (≥ `least`) that print different values differently, so two cells of different
    colour never carry the same label; `most` caps it."""
    finite = sorted({float(v) for v in values if v == v})
    for digits in range(least, most + 1):
        if len({f"{v:.{digits}f}" for v in finite}) == len(finite):
            return digits
    return most


def text_colour_on(rgba) -> str:
    """Black or white, whichever contrasts more with a cell of colour `rgba` (0..1 channels)."""
    return "black" if black_text_on(rgba) else "white"
