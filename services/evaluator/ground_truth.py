"""Ground truth from either source: MOT `gt.txt` or Label Studio JSON (told apart by content)."""

from __future__ import annotations

import os

from shared.errors import InputError
from shared.formats.det_db import parse_key
from shared.formats.labelstudio import parse_labelstudio
from shared.formats.mot_txt import MotSummary, MotTable, parse_mot_bytes, scan_mot
from shared.formats.text_io import decode_json, decode_text, has_bom, mapped

# where a run keeps its ground truth, by format
GT_NAMES = {"labelstudio": "gt.json", "mot": "gt.txt"}


def parse_ground_truth(data: bytes, source: str, num_frames: int | None = None) -> tuple[str, MotTable]:
    """('labelstudio' | 'mot', table); JSON text is Label Studio, anything else MOT text. `num_frames`: the
    video's frame count when known (Label Studio video regions are held no further)."""
    if has_bom(data):  # UTF-16 or UTF-8 with a byte-order mark: plain UTF-8 before looking
        data = decode_text(data, source).encode("utf-8")
    if data.lstrip(b" \t\r\n")[:1] in (b"[", b"{"):
        text = decode_text(data, source)
        data = decode_json(text, source)
        if _looks_like_det_db(data):
            raise InputError("this is a det_db (detections keyed <sequence>/img1/<frame>), not ground truth: upload "
                             "a Label Studio export or a MOT gt.txt", source=source)  # fmt: skip
        kind, table = "labelstudio", parse_labelstudio(data, source, num_frames=num_frames).table
    else:
        kind, table = "mot", parse_mot_bytes(data, source)  # the compiled fast path for plain decimals
    if len(table) == 0:  # refused before anything is stored: an empty export never replaces a valid one
        raise InputError("ground truth is empty (no tasks or no boxes)", source=source)
    return kind, table


def _looks_like_det_db(data: object) -> bool:
    return isinstance(data, dict) and bool(data) and all(parse_key(str(k)) for k in list(data)[:20])


def read_ground_truth(
    path: str | os.PathLike, source: str | None = None, num_frames: int | None = None
) -> tuple[str, MotTable]:
    """A file on disk: MOT text is parsed from a memory map of it (a large upload is never copied into the
    process); Label Studio JSON is read whole (the JSON parser needs it)."""
    source = source or str(path)
    with mapped(path) as data:
        head = data[:4096].lstrip(b" \t\r\n")
        if not head or head[:1] in (b"[", b"{") or has_bom(data):
            return parse_ground_truth(data[:], source, num_frames)
        table = parse_mot_bytes(data, source)
    if len(table) == 0:
        raise InputError("ground truth is empty (no tasks or no boxes)", source=source)
    return "mot", table


def check_ground_truth(path: str | os.PathLike, source: str, num_frames: int | None = None) -> tuple[str, MotSummary]:
    """Validate an upload as `read_ground_truth` would and summarise it without keeping its table: MOT text is
    checked a chunk at a time (the API's memory stays bounded by the chunk, whatever the file's size)."""
    with mapped(path) as data:
        head = data[:4096].lstrip(b" \t\r\n")
        if head and head[:1] not in (b"[", b"{") and not has_bom(data):
            summary = scan_mot(data, source)
            if summary.rows == 0:
                raise InputError("ground truth is empty (no tasks or no boxes)", source=source)
            return "mot", summary
    kind, table = read_ground_truth(path, source, num_frames)
    first, last = (int(table.frame.min()), int(table.frame.max())) if len(table) else (None, None)
    return kind, MotSummary(len(table), len(set(table.id.tolist())), first, last)
