"""Reading user files as text and JSON with errors that name the file and position."""

from __future__ import annotations

import contextlib
import json
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

from shared.errors import InputError

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text; a byte-order mark says UTF-8 or UTF-16 (what Windows editors save) and is dropped."""
    if data[:2] in UTF16_BOMS:
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputError(f"not UTF-16 text (byte {exc.start})", source=source) from None
    start = len(UTF8_BOM) if data[:3] == UTF8_BOM else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: start + exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte {start + exc.start})", source=source, where=f"line {line}") from None


def has_bom(data) -> bool:
    return data[:3] == UTF8_BOM or data[:2] in UTF16_BOMS


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a file", source=str(path)) from None


@contextlib.contextmanager
def mapped(path: str | os.PathLike) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes as a read-only memory map (pages come from the page cache, nothing is copied into
    the process); an empty file as b"". Errors as `read_bytes`."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InputError("file not found", source=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder, not a file", source=str(path)) from None
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
            yield view


def decode_json(text: str, source: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON: {exc.msg}", source=source, where=f"line {exc.lineno} column {exc.colno}"
        ) from None


def read_json(path: str | os.PathLike) -> object:
    source = str(path)
    text = decode_text(read_bytes(path), source)
    if not text.strip():
        raise InputError("empty file: expected JSON", source=source)
    return decode_json(text, source)
