"""Serving stored files safely while writers replace them.

Artifacts are replaced by atomic renames, so a file opened before a rename keeps its old, complete content.
`open_file_response` opens the file first and streams from that handle (length from the same handle): a
reader gets either the old or the new file whole, never a cut body, and a file removed before the open is a
clean error instead of a 500 half-way through the response.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fastapi.responses import Response, StreamingResponse

CHUNK = 1 << 20


def _chunks(handle: BinaryIO, remaining: int) -> Iterator[bytes]:
    try:
        while remaining > 0 and (chunk := handle.read(min(CHUNK, remaining))):
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `Range: bytes=a-b` (also `a-` and `-n`); None for no or another kind of range."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match or not (match.group(1) or match.group(2)):
        return None
    if match.group(1):
        first = int(match.group(1))
        last = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
    else:
        first, last = max(0, size - int(match.group(2))), size - 1
    return first, last


def open_file_response(
    path: Path, media_type: str | None = None, filename: str | None = None, range_header: str | None = None
) -> Response:
    """The file, or the byte range `range_header` asks for (206; a browser seeks in a video this way).
    Raises FileNotFoundError when the file is gone before it could be opened."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by the streaming generator
    size = os.fstat(handle.fileno()).st_size
    headers = {"Accept-Ranges": "bytes"}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    first, last, status = 0, size - 1, 200
    wanted = _byte_range(range_header, size)
    if wanted is not None:
        first, last = wanted
        if first > last or first >= size:
            handle.close()
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        status, headers["Content-Range"] = 206, f"bytes {first}-{last}/{size}"
    handle.seek(first)
    headers["Content-Length"] = str(last - first + 1)
    return StreamingResponse(_chunks(handle, last - first + 1), status_code=status,
                             media_type=media_type or _guess(path), headers=headers)  # fmt: skip


def _guess(path: Path) -> str:
    import mimetypes

    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
