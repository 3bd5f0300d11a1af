"""Streaming multipart uploads straight to disk.

Starlette's form parser spools the whole body to a temporary file before the handler
runs and knows no size limit for files; we parse the stream ourselves (python-multipart)
so memory stays flat for multi-GB videos, the limit is enforced while bytes arrive, and
the file lands directly in the data root.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import HTTPException, Request
from python_multipart.multipart import MultipartParser, parse_options_header

FIELD_LIMIT = 64 * 1024  # bytes for a non-file form field


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, Path, int]] = field(default_factory=dict)  # name -> (filename, path, bytes)

    def discard(self) -> None:
        for _, path, _ in self.files.values():
            path.unlink(missing_ok=True)


class _TooLarge(Exception):
    pass


async def receive_multipart(request: Request, folder: Path, limit: int) -> Upload:
    """Parse a multipart body; file parts go to `folder/<uuid>.part`. Raises 4xx on bad bodies."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + FIELD_LIMIT * 16:
        raise HTTPException(413, f"upload of {int(length)} bytes is over the limit of {limit} bytes")
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HTTPException(415, "expected multipart/form-data with a boundary")
    folder.mkdir(parents=True, exist_ok=True)
    upload = Upload()
    state: dict = {"headers": {}, "header_field": b"", "header_value": b""}

    def on_part_begin():
        state.update(headers={}, name=None, filename=None, handle=None, buffer=bytearray(), size=0)

    def on_header_field(data, start, end):
        state["header_field"] += data[start:end]

    def on_header_value(data, start, end):
        state["header_value"] += data[start:end]

    def on_header_end():
        state["headers"][state["header_field"].decode("latin-1").lower()] = state["header_value"]
        state["header_field"], state["header_value"] = b"", b""

    def on_headers_finished():
        _, disposition = parse_options_header(state["headers"].get("content-disposition", b""))
        state["name"] = disposition.get(b"name", b"").decode("utf-8", "replace")
        filename = disposition.get(b"filename")
        if filename is not None:
            state["filename"] = filename.decode("utf-8", "replace")
            path = folder / f"{uuid.uuid4().hex}.part"
            state["path"] = path
            state["handle"] = open(path, "wb")  # noqa: SIM115 - closed in on_part_end / on error

    def on_part_data(data, start, end):
        chunk = data[start:end]
        state["size"] += len(chunk)
        if state["handle"] is not None:
            if state["size"] > limit:
                raise _TooLarge
            state["handle"].write(chunk)
        else:
            if state["size"] > FIELD_LIMIT:
                raise _TooLarge
            state["buffer"] += chunk

    def on_part_end():
        if state["handle"] is not None:
            state["handle"].flush()
            os.fsync(state["handle"].fileno())
            state["handle"].close()
            state["handle"] = None
            earlier = upload.files.get(state["name"])
            if earlier is not None:  # a repeated field: keep the last, never leak the earlier temp file
                earlier[1].unlink(missing_ok=True)
            upload.files[state["name"]] = (state["filename"], state["path"], state["size"])
        else:
            upload.fields[state["name"]] = state["buffer"].decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except _TooLarge:
        _cleanup(state, upload)
        raise HTTPException(
            413, f"upload is over the limit of {limit / 2**20:g} MB (MOTPIPE_UPLOAD_LIMIT_MB)"
        ) from None
    except (HTTPException, OSError):  # an OSError is the disk (full, read-only): the app answers 507
        _cleanup(state, upload)
        raise
    except Exception as exc:  # malformed body or client gone
        _cleanup(state, upload)
        raise HTTPException(400, f"malformed multipart body: {exc}") from None
    if state.get("handle") is not None:  # body ended inside a file part
        _cleanup(state, upload)
        raise HTTPException(400, "malformed multipart body: truncated file part")
    return upload


def _cleanup(state: dict, upload: Upload) -> None:
    handle = state.get("handle")
    if handle is not None:
        handle.close()
        Path(state["path"]).unlink(missing_ok=True)
    upload.discard()


def remove_stale_parts(folder: Path, older_than_s: float = 3600.0) -> int:
    """Delete `*.part` files a killed API left behind (called at start; live uploads are younger)."""
    import time

    removed = 0
    for path in folder.glob("*.part") if folder.is_dir() else []:
        try:
            if time.time() - path.stat().st_mtime > older_than_s:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
