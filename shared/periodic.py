"""Run a function every few seconds in a daemon thread while a block of code runs (heartbeats)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def every(interval: float, fn: Callable[[], None], name: str = "periodic") -> Iterator[None]:
    """Call `fn` every `interval` seconds until the block ends; a failing call is retried next time."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            with contextlib.suppress(Exception):  # a missed beat is harmless; the next one retries
                fn()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
