"""Ground truth from either source: MOT `gt.txt` or Label Studio JSON (told apart by content)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shared.errors import InputError
from shared.formats.labelstudio import parse_labelstudio
from shared.formats.mot_txt import MotTable, parse_mot_text


def parse_ground_truth(data: bytes, source: str) -> tuple[str, MotTable]:
    """('labelstudio' | 'mot', table); JSON text is Label Studio, anything else MOT text."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", source=source) from None
    if text.lstrip().startswith(("[", "{")):
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"invalid JSON: {exc.msg}", source=source, where=f"line {exc.lineno} column {exc.colno}"
            ) from None
        return "labelstudio", parse_labelstudio(decoded, source).table
    table = parse_mot_text(text, source)
    if len(table) == 0:
        raise InputError("ground truth is empty", source=source)
    return "mot", table


def read_ground_truth(path: str | os.PathLike) -> tuple[str, MotTable]:
    try:
        return parse_ground_truth(Path(path).read_bytes(), str(path))
    except FileNotFoundError:
        raise InputError("file not found", source=str(path)) from None
