"""Serving stored files safely while writers replace them.

Artifacts are replaced by atomic renames, so a file opened before a rename keeps its old, complete content.
`open_file_response` opens the file first and streams from that handle (length from the same handle): a
reader gets either the old or the new file whole, never a cut body, and a file removed before the open is a
clean error instead of a 500 half-way through the response.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from fastapi.responses import StreamingResponse

CHUNK = 1 << 20


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := handle.read(CHUNK):
            yield chunk
    finally:
        handle.close()


def open_file_response(path: Path, media_type: str | None = None, filename: str | None = None) -> StreamingResponse:
    """Raises FileNotFoundError when the file is gone before it could be opened."""
    handle = open(path, "rb")  # noqa: SIM115 - closed by the streaming generator
    size = os.fstat(handle.fileno()).st_size
    headers = {"Content-Length": str(size)}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return StreamingResponse(_chunks(handle), media_type=media_type or _guess(path), headers=headers)


def _guess(path: Path) -> str:
    import mimetypes

    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
