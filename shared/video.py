"""Video files through PyAV (FFmpeg): probing, decoding to BGR arrays, H.264 writing.

PyAV rather than OpenCV's VideoCapture because it raises clear errors on broken files
(OpenCV prints to stderr and returns empty frames) and writes browser-playable H.264.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from shared.errors import InputError


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    width: int
    height: int
    fps: float
    codec: str


def probe_video(path: str | os.PathLike, check_end: bool = True) -> VideoInfo:
    """Open a video, decode its first frame and (with `check_end`) one near its end.

    Raises `InputError` for empty, truncated or non-video files, so they are refused
    before a task is queued rather than failing halfway through.
    """
    source = str(path)
    file = Path(path)
    if not file.is_file():
        raise InputError("file not found", source=source)
    if file.stat().st_size == 0:
        raise InputError("empty (0-byte) file", source=source)
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise InputError("no video stream in file", source=source)
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            if first is None:
                raise InputError("no decodable frame (truncated or corrupt video)", source=source)
            frames = int(stream.frames or 0)
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            if check_end and frames > 1:
                _check_tail(container, stream, source)
            info = VideoInfo(frames, first.width, first.height, fps, stream.codec_context.name)
        if frames == 0:  # MKV/WebM often store no frame count: count packets (no decoding, no frames kept)
            info = dataclasses.replace(info, frames=_count_packets(source))
        return info
    except InputError:
        raise
    except (av.FFmpegError, OSError, StopIteration, ValueError) as exc:
        raise InputError(f"not a readable video ({type(exc).__name__}: {exc})", source=source) from None


def _count_packets(source: str) -> int:
    """Frames of the first video stream, counted from its packets (exact for the codecs we decode)."""
    with av.open(source) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size > 0)


def _check_tail(container, stream, source: str) -> None:
    """Seek to the last stretch of the stream and decode a frame there; truncated files fail here."""
    if not stream.duration:
        return
    container.seek(int(stream.start_time or 0) + int(stream.duration * 0.95), stream=stream, any_frame=False)
    try:
        got = next(container.decode(stream), None)
    except av.FFmpegError as exc:
        raise InputError(f"video is truncated: decoding near the end failed ({exc})", source=source) from None
    if got is None:
        raise InputError("video is truncated: no frame near its declared end", source=source)


def iter_video(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode every frame as a BGR uint8 array (H, W, 3)."""
    for frame in iter_video_frames(path):
        yield frame.to_ndarray(format="bgr24")


def iter_video_frames(path: str | os.PathLike) -> Iterator[av.VideoFrame]:
    """Decode every frame, still in the video's own pixel format: converting it to BGR (`to_ndarray`), about
    as costly as decoding it, can then run on another thread (`frames.prepared_frames`)."""
    source = str(path)
    try:
        with av.open(source) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield from container.decode(stream)
    except av.FFmpegError as exc:
        raise InputError(f"decoding failed ({exc})", source=source) from None


class VideoWriter:
    """Streaming H.264 (yuv420p) writer; frames are BGR uint8 arrays of one size."""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int], crf: int = 18):
        self.path = str(path)
        self._container = av.open(self.path, mode="w")
        self._stream = self._container.add_stream("libx264", rate=round(fps))
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast", "movflags": "+faststart"}

    def write(self, bgr: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
