"""MOT Challenge text: `frame,id,x,y,w,h,conf,class,vis[,z]`, 1-based frames.

Readers accept 6-10 columns, blank lines, CRLF and a missing trailing newline; a 0-byte
file is a valid empty result. Parsing is vectorised because tracker outputs and ground
truths reach hundreds of MB: plain decimal files go through `decimal_text` (all numbers at
once), others through one `np.fromstring` over the whole file; only when both fail do we
walk the lines to name the first bad one.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from shared.atomic import atomic_open
from shared.errors import InputError
from shared.formats.decimal_text import parse_decimal_table
from shared.formats.text_io import decode_text, has_bom, mapped

MAX_FRAME = 10_000_000  # evaluation allocates per frame number: absurd ones are refused, not allocated
# ids and classes are read as float64 and held as int64: beyond 2^53 they are no longer exact integers (and
# 1e30 wrapped to -2^63 when cast); refused instead
ID_LIMIT = 2**53
COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "class", "vis", "z")
# Values given to columns a file leaves out (MOT ground truth without conf counts as "use it").
_DEFAULTS = np.array([0, 0, 0, 0, 0, 0, 1, -1, -1, -1], dtype=np.float64)


@dataclass(frozen=True)
class MotTable:
    """Rows of a MOT file as columns; `boxes` are x, y, w, h in pixels."""

    frame: np.ndarray  # int64 (n,)
    id: np.ndarray  # int64 (n,)
    boxes: np.ndarray  # float64 (n, 4)
    conf: np.ndarray  # float64 (n,)
    cls: np.ndarray  # int64 (n,)
    vis: np.ndarray  # float64 (n,)

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    @classmethod
    def empty(cls) -> MotTable:
        return cls.from_matrix(np.zeros((0, 10)))

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> MotTable:
        m = np.asarray(matrix, dtype=np.float64).reshape(-1, 10)
        return cls(
            frame=m[:, 0].astype(np.int64),
            id=m[:, 1].astype(np.int64),
            boxes=m[:, 2:6].copy(),
            conf=m[:, 6].copy(),
            cls=m[:, 7].astype(np.int64),
            vis=m[:, 8].copy(),
        )

    @classmethod
    def concat(cls, *tables: MotTable) -> MotTable:
        """The rows of every table, in order."""
        return cls(*(np.concatenate([getattr(t, f) for t in tables]) for f in ("frame", "id", "boxes", "conf",
                                                                               "cls", "vis")))  # fmt: skip

    def select(self, mask: np.ndarray) -> MotTable:
        return MotTable(
            self.frame[mask], self.id[mask], self.boxes[mask], self.conf[mask], self.cls[mask], self.vis[mask]
        )


def rows_by_frame(table: MotTable | None) -> dict[int, np.ndarray]:
    """{frame: the indices of its rows} (empty for no table)."""
    if table is None or len(table) == 0:
        return {}
    order = np.argsort(table.frame, kind="stable")
    frames, starts = np.unique(table.frame[order], return_index=True)
    return {int(f): rows for f, rows in zip(frames, np.split(order, starts[1:]), strict=True)}


def _bad_line(lines: list[str], source: str) -> InputError:
    """Walk the lines to find the first one the fast path could not take."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        columns = line.count(",") + 1  # counted, not split: one 150 MB line would make 37 M strings
        if not 6 <= columns <= 10:
            return InputError(
                f"expected 6-10 comma-separated columns, got {columns:,}",
                source=source,
                where=f"line {number}",
            )
        for name, part in zip(COLUMNS, line.split(","), strict=False):
            try:
                float(part)
            except ValueError:
                return InputError(f"not a number: {part.strip()!r}", source=source, where=f"line {number}", field=name)
    return InputError("could not parse", source=source)


def _matrix_from_lines(lines: list[str], raw_lines: list[str], source: str) -> np.ndarray:
    """Parse lines that may mix column counts; pads missing columns with the defaults."""
    rows = []
    for line in lines:
        parts = line.split(",")
        if not 6 <= len(parts) <= 10:
            raise _bad_line(raw_lines, source)
        row = _DEFAULTS.copy()
        try:
            row[: len(parts)] = [float(p) for p in parts]
        except ValueError:
            raise _bad_line(raw_lines, source) from None
        rows.append(row)
    return np.asarray(rows).reshape(-1, 10)


def parse_mot_text(text: str, source: str = "MOT text") -> MotTable:
    raw_lines = text.splitlines()
    lines = [line for line in raw_lines if line.strip()]
    if not lines:
        return MotTable.empty()
    ncols = lines[0].count(",") + 1
    if not 6 <= ncols <= 10:
        raise _bad_line(raw_lines, source)
    body = ",".join(lines)
    matrix = None
    if body.count(",") == len(lines) * ncols - 1:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # older numpy warns and stops early; we check the size
                flat = np.fromstring(body, dtype=np.float64, sep=",")
        except ValueError:  # numpy >= 2.3 raises on unparsable text
            flat = np.zeros(0)
        if flat.size == len(lines) * ncols:
            matrix = np.tile(_DEFAULTS, (len(lines), 1))
            matrix[:, :ncols] = flat.reshape(len(lines), ncols)
    if matrix is None:
        matrix = _matrix_from_lines(lines, raw_lines, source)
    _validate(matrix, lambda: raw_lines, source)
    return MotTable.from_matrix(matrix)


def _line_number(raw_lines: list[str], row: int) -> int:
    """1-based file line of the `row`-th non-blank line."""
    seen = -1
    for number, line in enumerate(raw_lines, start=1):
        if line.strip():
            seen += 1
            if seen == row:
                return number
    return row + 1


def _validate(matrix: np.ndarray, get_lines: Callable[[], list[str]], source: str) -> None:
    """Check values; the file's lines are only needed (and only split) to name a bad one."""
    finite = np.isfinite(matrix[:, :6])
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        line = _line_number(get_lines(), int(row))
        raise InputError("not a finite number", source=source, where=f"line {line}", field=COLUMNS[col])
    checks = (
        (
            (matrix[:, 0] < 1) | (matrix[:, 0] != np.round(matrix[:, 0])),
            "frame",
            "frame must be an integer >= 1",
        ),
        (matrix[:, 0] > MAX_FRAME, "frame", f"frame number above {MAX_FRAME:,} (over 4 days at 25 fps)"),
        ((matrix[:, 4] < 0) | (matrix[:, 5] < 0), "w/h", "negative box size"),
        (~(np.abs(matrix[:, 1]) < ID_LIMIT), "id", f"id must be a number within ±{ID_LIMIT - 1:,}"),
        (~(np.abs(matrix[:, 7]) < ID_LIMIT), "class", f"class must be a number within ±{ID_LIMIT - 1:,}"),
    )
    fractional = np.flatnonzero(matrix[:, 1] != np.trunc(matrix[:, 1]))
    if fractional.size:  # TrackEval casts ids with astype(int) (truncation); we read them the same, and say so
        lines = [_line_number(get_lines(), int(row)) for row in fractional[:5]]
        warnings.warn(
            f"{source}: {fractional.size} non-integral id(s), read as TrackEval reads them (truncated), "
            f"lines {', '.join(map(str, lines))}{' ...' if fractional.size > 5 else ''}",
            stacklevel=3,
        )
    for bad, field, message in checks:
        rows = np.flatnonzero(bad)
        if rows.size:
            line = _line_number(get_lines(), int(rows[0]))
            raise InputError(
                f"{message} ({int(rows.size)} row(s) affected)",
                source=source,
                where=f"line {line}",
                field=field,
            )


def _blank(data) -> bool:
    step = 1 << 20
    return not any(data[i : i + step].strip() for i in range(0, len(data), step))


def parse_mot_bytes(data, source: str = "MOT text") -> MotTable:
    """Plain decimal files take the vectorised fast path; anything else the general parser. `data` is bytes
    or a read-only memory map of the file (the fast path reads it in place)."""
    if has_bom(data):  # UTF-16, or UTF-8 with a byte-order mark (Windows editors): plain UTF-8 from here on
        data = decode_text(data[:], source).encode("utf-8")
    _check_first_line(data, source)
    newline = data.find(b"\n")
    ncols = data[: newline if newline >= 0 else len(data)].count(b",") + 1
    matrix = parse_decimal_table(data, ncols, fill=_DEFAULTS) if 6 <= ncols <= 10 and not _blank(data) else None
    if matrix is None:
        return parse_mot_text(decode_text(data[:], source), source)
    _validate(matrix, lambda: decode_text(data[:], source).splitlines(), source)
    return MotTable.from_matrix(matrix)


_NOT_SPACE = re.compile(rb"\S")


def _check_first_line(data, source: str) -> None:
    """Refuse a file whose first non-blank line has the wrong column count before reading the rest: the line
    walk that names a bad line would hold every line of a file that is not MOT text at all in memory."""
    found = _NOT_SPACE.search(data)
    if found is None:
        return
    start = data.rfind(b"\n", 0, found.start()) + 1
    end = data.find(b"\n", start)
    columns = data[start : end if end >= 0 else len(data)].count(b",") + 1
    if not 6 <= columns <= 10:
        line = data[:start].count(b"\n") + 1
        raise InputError(f"expected 6-10 comma-separated columns, got {columns:,}", source=source,
                         where=f"line {line}")  # fmt: skip


@dataclass(frozen=True)
class MotSummary:
    """What a MOT file holds, found without keeping its table (`scan_mot`)."""

    rows: int
    ids: int
    first_frame: int | None
    last_frame: int | None


SCAN_CHUNK_BYTES = 16 << 20


def scan_mot(data, source: str = "MOT text", chunk_bytes: int = SCAN_CHUNK_BYTES) -> MotSummary:
    """Validate MOT text as `parse_mot_bytes` does, a chunk of whole lines at a time, keeping only a summary:
    memory is bounded by the chunk (and the distinct ids), not by the file (a 500 MB upload took 2.5 GB)."""
    if has_bom(data):
        data = decode_text(data[:], source).encode("utf-8")
    rows, ids, first, last = 0, set(), None, None
    start, lines_before = 0, 0
    while start < len(data):
        end = data.find(b"\n", min(start + chunk_bytes, len(data)))
        end = len(data) if end < 0 else end + 1
        chunk = data[start:end]
        try:
            table = parse_mot_bytes(chunk, source)
        except InputError as exc:
            if exc.where and exc.where.startswith("line "):
                exc = InputError(exc.message, source=exc.source, where=f"line {int(exc.where[5:]) + lines_before}",
                                 field=exc.field)  # fmt: skip
            raise exc from None
        if len(table):
            rows += len(table)
            ids.update(np.unique(table.id).tolist())
            low, high = int(table.frame.min()), int(table.frame.max())
            first, last = min(low, first or low), max(high, last or high)
        lines_before += chunk.count(b"\n")
        start = end
    return MotSummary(rows, len(ids), first, last)


def read_mot(path: str | os.PathLike) -> MotTable:
    with mapped(path) as data:  # parsed in place: a large file is not copied into the process
        return parse_mot_bytes(data, str(path))


def format_mot(table: MotTable, columns: int = 10) -> str:
    """Lines `frame,id,x,y,w,h,conf,class,vis,z` (the first `columns`), boxes `%.2f`, conf `%.6g`."""
    if len(table) == 0:
        return ""
    fields = [
        table.frame.astype(str),
        table.id.astype(str),
        *(np.char.mod("%.2f", table.boxes[:, i]) for i in range(4)),
        np.char.mod("%.6g", table.conf),
        table.cls.astype(str),
        np.char.mod("%g", table.vis),
        np.full(len(table), "-1"),
    ][:columns]
    joined = fields[0]
    for column in fields[1:]:
        joined = np.char.add(np.char.add(joined, ","), column)
    return "\n".join(joined.tolist()) + "\n"


def write_mot(path: str | os.PathLike, table: MotTable, columns: int = 10) -> None:
    """Write atomically, sorted by frame then id (an empty table gives a 0-byte file)."""
    order = np.lexsort((table.id, table.frame))
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(format_mot(table.select(order), columns))
