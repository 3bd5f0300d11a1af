"""MOTRv2's det_db: JSON `{"<sequence>/img1/<frame:06d>": ["l,t,w,h,score\\n", ...]}`.

Byte-compatible with what MOTRv2's loader reads: box values `%.2f`, score `%.6f`, each line
ending in a newline, keys are image paths without extension relative to the dataset root.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from shared.atomic import atomic_open
from shared.errors import InputError
from shared.formats.text_io import read_json

# A detector gives at most a few hundred proposals a frame (D-FINE: 300 queries). A frame with far more (a
# broken or hostile file: 10^6 boxes took a tracking worker past 8 GB until it was killed) is refused by the
# trackers and reported by the doctor.
MAX_PROPOSALS_PER_FRAME = 10_000
_KEY_RE = re.compile(r"^(?P<sequence>.+)/img1/(?P<frame>\d+)$")


def det_db_key(sequence: str, frame: int) -> str:
    """The key MOTRv2 looks up for 1-based `frame` of `sequence`."""
    return f"{sequence}/img1/{frame:06d}"


def parse_key(key: str) -> tuple[str, int] | None:
    """`("seq", 12)` for `"seq/img1/000012"`; None when the key does not follow that rule."""
    match = _KEY_RE.match(key)
    if match is None:
        return None
    return match["sequence"], int(match["frame"])


def format_line(left: float, top: float, width: float, height: float, score: float) -> str:
    return f"{left:.2f},{top:.2f},{width:.2f},{height:.2f},{score:.6f}\n"


def _parse_line(line: object, source: str, key: str, index: int) -> tuple[float, ...]:
    where = f"key {key!r} entry {index}"
    if not isinstance(line, str):
        raise InputError(f"expected a string 'l,t,w,h,score', got {type(line).__name__}", source=source, where=where)
    parts = line.strip().split(",")
    if len(parts) != 5:
        raise InputError(f"expected 5 comma-separated values, got {len(parts)}: {line!r}", source=source, where=where)
    values = []
    for name, part in zip(("l", "t", "w", "h", "score"), parts, strict=True):
        try:
            value = float(part)
        except ValueError:
            raise InputError(f"not a number: {part!r}", source=source, where=where, field=name) from None
        if not math.isfinite(value):
            raise InputError(f"not a finite number: {part!r}", source=source, where=where, field=name)
        values.append(value)
    if values[2] < 0 or values[3] < 0:
        raise InputError(f"negative box size in {line.strip()!r}", source=source, where=where, field="w/h")
    return tuple(values)


def parse_det_db(data: object, source: str = "det_db") -> dict[str, np.ndarray]:
    """Validate a decoded det_db and return `{key: float64 array (n, 5) of l,t,w,h,score}`."""
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object of key -> list of lines, got {type(data).__name__}", source=source)
    table: dict[str, np.ndarray] = {}
    for key, lines in data.items():
        if not isinstance(lines, list):
            raise InputError(
                f"expected a list of lines, got {type(lines).__name__}", source=source, where=f"key {key!r}"
            )
        rows = [_parse_line(line, source, key, i) for i, line in enumerate(lines)]
        table[key] = np.asarray(rows, dtype=np.float64).reshape(len(rows), 5)
    return table


def read_det_db(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read and validate a det_db file; errors name the file, key, entry and field."""
    return parse_det_db(read_json(path), str(path))


def to_json_value(table: Mapping[str, np.ndarray]) -> dict[str, list[str]]:
    return {key: [format_line(*row) for row in np.asarray(rows).reshape(-1, 5)] for key, rows in table.items()}


def write_det_db(path: str | os.PathLike, table: Mapping[str, np.ndarray]) -> None:
    """Write atomically, keys in the given order, in MOTRv2's line format."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(to_json_value(table), handle, indent=1)


def sequences(keys: Iterable[str]) -> set[str]:
    """Sequence names of the keys that follow the `<sequence>/img1/<frame>` rule."""
    return {parsed[0] for key in keys if (parsed := parse_key(key)) is not None}


def resolve_sequence(det_db: Mapping[str, np.ndarray], sequence: str | None, source: str = "det_db") -> str:
    """The sequence to use: the one named (it must have keys), else the det_db's only one."""
    names = sequences(det_db)
    if sequence is not None:
        if sequence not in names:
            available = next(iter(det_db), None)
            raise InputError(
                f"no keys for sequence {sequence!r}: expected e.g. {det_db_key(sequence, 1)!r}, "
                f"available e.g. {available!r}",
                source=source,
            )
        return sequence
    if len(names) == 1:
        return next(iter(names))
    if not names:
        example = next(iter(det_db), None)
        raise InputError(f"no key follows '<sequence>/img1/<frame:06d>' (e.g. {example!r})", source=source)
    raise InputError(f"det_db holds {len(names)} sequences {sorted(names)[:5]}; name one", source=source)


# -- the classes sidecar ----------------------------------------------------------------------------------
# The det_db stays byte-compatible with the official format; the class of each line travels beside it in
# `<det_db without .json>.classes.json`: the same keys, values = lists of integer motpipe class ids (1 player,
# 2 ball, others by id) aligned with the det_db's lines. The official loader never reads it.


def classes_path(det_db_path: str | os.PathLike) -> Path:
    path = Path(det_db_path)
    stem = path.name[: -len(".json")] if path.name.endswith(".json") else path.name
    return path.with_name(f"{stem}.classes.json")


def write_det_db_classes(det_db_path: str | os.PathLike, classes: Mapping[str, Iterable[int]]) -> Path:
    """Write the sidecar beside `det_db_path` atomically; returns its path."""
    target = classes_path(det_db_path)
    with atomic_open(target, "w", encoding="utf-8") as handle:
        json.dump({key: [int(c) for c in values] for key, values in classes.items()}, handle)
    return target


def check_det_db_classes(data: object, det_db: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """The sidecar's classes as int64 arrays, or an InputError naming the first key that does not match."""
    if not isinstance(data, dict):
        raise InputError(f"expected a JSON object of key -> list of class ids, got {type(data).__name__}",
                         source=source)  # fmt: skip
    missing = next((key for key in det_db if key not in data), None)
    if missing is not None:
        raise InputError("the det_db has this key, its classes sidecar does not", source=source,
                         where=f"key {missing!r}")  # fmt: skip
    extra = next((key for key in data if key not in det_db), None)
    if extra is not None:
        raise InputError("the classes sidecar has this key, its det_db does not", source=source,
                         where=f"key {extra!r}")  # fmt: skip
    classes = {}
    for key, values in data.items():
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise InputError("expected a list of integer class ids", source=source, where=f"key {key!r}")
        if len(values) != len(det_db[key]):
            raise InputError(f"{len(values)} classes for {len(det_db[key])} det_db lines", source=source,
                             where=f"key {key!r}")  # fmt: skip
        classes[key] = np.asarray(values, dtype=np.int64)
    return classes


def read_det_db_classes(
    det_db_path: str | os.PathLike, det_db: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """The classes sidecar beside a det_db, checked against it; None when there is none."""
    sidecar = classes_path(det_db_path)
    if not sidecar.is_file():
        return None
    return check_det_db_classes(read_json(sidecar), det_db, str(sidecar))
