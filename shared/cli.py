"""Command-line plumbing every command module uses: the stderr console and a rich progress bar."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.console import Console

console = Console(stderr=True)


def parse_value(text: str):
    """A command-line value as int, float, bool ('true'/'false') or the text itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(text.lower(), text)


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator:
    """A callback `(done, total)` that drives a rich progress bar."""
    # imported here: commands without a bar (eval) start ~10 ms sooner
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total)

        yield update
