"""Command-line plumbing every command module uses: the stderr console and a rich progress bar."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path


class _LazyConsole:
    """rich's stderr Console, made on first use: importing rich costs ~20 ms that a command printing
    nothing through it (`motpipe eval`) need not pay."""

    _console = None

    def real(self):
        if _LazyConsole._console is None:
            from rich.console import Console

            _LazyConsole._console = Console(stderr=True, soft_wrap=True)  # a line is read whole, or grepped
        return _LazyConsole._console

    def __getattr__(self, name: str):
        return getattr(self.real(), name)


console = _LazyConsole()


def parse_value(text: str):
    """A command-line value as int, float, bool ('true'/'false') or the text itself."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return {"true": True, "false": False}.get(text.lower(), text)


@contextlib.contextmanager
def progress_bar(label: str, from_first_update: bool = False) -> Iterator:
    """A callback `(done, total)` that drives a rich progress bar; `from_first_update`: the bar appears only
    once there is progress (a command that fails before has its error line alone)."""
    # imported here: commands without a bar (eval) start ~10 ms sooner
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=console.real(), transient=False)  # fmt: skip
    task = bar.add_task(label, total=None)

    def update(done: int, total: int | None = None) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total)

    if not from_first_update:
        bar.start()
    try:
        yield update
    finally:
        bar.stop()


def existing_data_root(given: str | None, command: str) -> Path:
    """`--data-root` (or MOTPIPE_DATA_ROOT) when that folder exists; a typo or the wrong working directory is
    said rather than an empty data root started there."""
    from shared.settings import get_settings

    root = Path(given) if given else get_settings().data_root
    if not root.is_dir():
        raise SystemExit(
            f"motpipe {command}: no data root at {root.resolve()} (give --data-root or set MOTPIPE_DATA_ROOT)"
        )
    return root


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help with every option's default, once: appended unless the text already names one, left
    out when there is none (None, False) — `ArgumentDefaultsHelpFormatter` prints "(default: None)" and
    doubles defaults the text gives. Descriptions keep their line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS:
            return text
        if "default" in text or action.default == [] or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def explain_every_option(parser) -> None:
    """Give `parser` and all its subcommands' parsers the `HelpFormatter`."""
    todo = [parser]
    while todo:
        current = todo.pop()
        current.formatter_class = HelpFormatter
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
