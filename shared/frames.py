"""Frame sources: a video file, a folder of images, a glob of images, or one image.

Frames are numbered 1, 2, ... in video order or in sorted file-name order, the numbering
MOTRv2's det_db keys use. Decoding runs ahead in a background thread (`prefetch`) so the
model never waits on the decoder.
"""

from __future__ import annotations

import glob
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from shared.errors import InputError
from shared.video import VideoInfo, iter_video, iter_video_frames, probe_video

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class FrameSource:
    description: str
    count: int
    size: tuple[int, int]  # width, height
    fps: float
    video: Path | None = None
    images: list[Path] | None = None

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        """(1-based frame number, BGR image)."""
        for number, load in self.loaders():
            yield number, load()

    def loaders(self) -> Iterator[tuple[int, Callable[[], np.ndarray]]]:
        """(1-based frame number, a call that gives its BGR image): a video's frames decoded here, in order,
        their conversion to BGR (and an image file's reading) left to whoever calls."""
        if self.video is not None:
            for number, frame in enumerate(iter_video_frames(self.video), start=1):
                yield number, partial(frame.to_ndarray, format="bgr24")
            return
        for number, path in enumerate(self.images or [], start=1):
            yield number, partial(_read_image, path)


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError("not a readable image", source=str(path))
    return image


def _image_source(paths: list[Path], description: str) -> FrameSource:
    first = cv2.imread(str(paths[0]), cv2.IMREAD_COLOR)
    if first is None:
        raise InputError("not a readable image", source=str(paths[0]))
    return FrameSource(description, len(paths), (first.shape[1], first.shape[0]), 25.0, images=paths)


def open_frames(spec: str | os.PathLike) -> FrameSource:
    """Open a video file, image folder, image glob or single image."""
    text = str(spec)
    path = Path(text)
    if any(ch in text for ch in "*?["):
        images = sorted(Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputError("glob matches no image files", source=text)
        return _image_source(images, text)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputError("folder holds no image files", source=text)
        return _image_source(images, text)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if not path.is_file():
            raise InputError("file not found", source=text)
        return _image_source([path], text)
    info: VideoInfo = probe_video(path)
    return FrameSource(text, info.frames, (info.width, info.height), info.fps, video=path)


class Prefetch:
    """Iterates `items` run in a background thread, `depth` items ahead; re-raises its errors here. The
    thread starts at construction, not at the first `next()`: a caller can start decoding before a slow
    set-up (`motpipe detect` decodes while torch is imported). `close()` stops the thread."""

    _DONE = object()

    def __init__(self, items: Iterator, depth: int = 8):
        self._buffer: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        # the thread holds the queue and the flag, not this object: a consumer that stops early drops it,
        # and `__del__` then stops the thread
        args = (items, self._buffer, self._stop)
        threading.Thread(target=self._produce, args=args, daemon=True, name="frame-prefetch").start()

    @classmethod
    def _produce(cls, items: Iterator, buffer: queue.Queue, stop: threading.Event) -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put(item)
            buffer.put(cls._DONE)
        except BaseException as exc:  # handed to the consumer
            buffer.put(exc)

    def __iter__(self) -> Prefetch:
        return self

    def __next__(self):
        if self._finished:
            raise StopIteration
        item = self._buffer.get()
        if item is self._DONE or isinstance(item, BaseException):
            self.close()
            if item is self._DONE:
                raise StopIteration
            raise item
        return item

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        self._finished = True
        self._stop.set()
        while not self._buffer.empty():  # unblock a producer waiting on a full queue
            self._buffer.get_nowait()


prefetch = Prefetch  # the name its callers use


def _prepare(number: int, load: Callable[[], np.ndarray], prepare: Callable | None) -> tuple[int, object]:
    image = load()
    return number, image if prepare is None else prepare(image)


def _in_order(source: FrameSource, prepare: Callable | None, workers: int, ahead: int) -> Iterator:
    with ThreadPoolExecutor(workers, thread_name_prefix="frame-prepare") as pool:
        pending: deque = deque()
        for number, load in source.loaders():
            pending.append(pool.submit(_prepare, number, load, prepare))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def prepared_frames(
    source: FrameSource, prepare: Callable[[np.ndarray], object] | None = None, workers: int = 1, depth: int = 16
) -> Prefetch:
    """(frame number, `prepare(BGR image)`) in frame order, made beside the caller: one thread decodes,
    `workers` threads convert each frame to BGR and prepare it (a resize: OpenCV and Pillow release the GIL),
    up to `depth` frames ahead. What feeds a GPU model as fast as it eats: a 1280x720 frame took 1.5 ms to
    decode, 1.3 ms to convert and 8.8 ms for D-FINE's resize on the 2-core development VM (docs/performance.md).
    `workers=1` still moves all of it off the caller's thread."""
    return Prefetch(_in_order(source, prepare, max(1, workers), max(depth, 2 * workers)), depth)


def on_gpu(device: str) -> bool:
    """Whether `device` is (`auto`: will be) a GPU, known without importing torch (an NVIDIA device node
    exists), so that a command can start decoding while torch loads."""
    return device.startswith("cuda") or (device == "auto" and Path("/dev/nvidiactl").exists())


def frame_workers(device: str) -> int:
    """Threads that prepare frames: on a GPU enough to keep up with it (half the cores, at most 8); on a CPU
    one, as the model wants the cores."""
    return max(2, min(8, (os.cpu_count() or 2) // 2)) if on_gpu(device) else 1


def extract_video_frames(video: Path, folder: Path) -> dict[int, Path]:
    """Decode a video once into lossless PNG frames (training reads frames in random order); reused when
    the cache is complete (a `done` marker is written last)."""
    marker = folder / "done"
    if not marker.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        for number, frame in enumerate(iter_video(video), start=1):
            path = folder / f"{number:06d}.png"
            tmp = folder / f".{number:06d}.{os.getpid()}.tmp.png"
            cv2.imwrite(str(tmp), frame)
            tmp.replace(path)
        marker.write_text(str(video))
    return {int(p.stem): p for p in folder.glob("*.png") if p.stem.isdigit()}
