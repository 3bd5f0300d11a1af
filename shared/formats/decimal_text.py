"""A vectorised parser for comma-separated plain decimals ("-12.345"), the bulk of MOT files.

`np.fromstring`/`np.loadtxt` call strtod per number (~200 ns each). MOT files hold plain
decimals with few digits, for which value = mantissa / 10**k is exact: both are exactly
representable (mantissa < 2**53, k <= 22), so one IEEE division gives the correctly rounded
double, the same bits strtod returns. We compute mantissas for all numbers at once with
numpy; anything else (exponents, nan, blanks, spaces, > 15 digits) returns None and the
caller uses the general parser.

`_decimal.c` applies the same rule in one compiled pass (about 10x faster); it is used when it
was built at install time, and this numpy version otherwise.
"""

from __future__ import annotations

import numpy as np

_COMMA, _NEWLINE, _DOT, _MINUS, _ZERO, _NINE = (ord(c) for c in ",\n.-09")
_POW10 = 10.0 ** np.arange(16)  # exact: 10**15 < 2**53


try:
    from shared.formats import _decimal
except ImportError:  # installed without a C compiler
    _decimal = None

BLOCK_BYTES = 1 << 21  # work on ~2 MB of text at a time: temporaries stay small and cache-warm


def parse_decimal_table(data, ncols: int, compiled: bool = True, fill=None) -> np.ndarray | None:
    """(lines, ncols) float64 array, or None when the text is not plain comma-separated decimals. `data` is
    bytes or a read-only memory map of a file (parsed in place, not copied). With `fill` (at least `ncols`
    values) the rows are `len(fill)` wide, the columns past `ncols` taken from it."""
    fill = np.zeros(ncols) if fill is None else np.ascontiguousarray(fill, dtype=np.float64)
    width = len(fill)
    if compiled and _decimal is not None:
        # room for the most rows the bytes can hold (one digit and a separator per value) instead of a pass
        # counting lines: np.empty does not touch the memory, so only the pages written are ever used
        out = np.empty((len(data) // (2 * ncols) + 1) * width)
        rows = _decimal.parse(data, ncols, out, fill)
        return out[: rows * width].reshape(rows, width) if rows > 0 else None
    blocks, start = [], 0
    while start < len(data):
        cut = data.find(b"\n", start + BLOCK_BYTES)
        end = len(data) if cut < 0 else cut + 1
        block = _parse_block(data[start:end], ncols)
        if block is None:
            return None
        blocks.append(block)
        start = end
    if not blocks:
        return None
    values = np.concatenate(blocks)
    if width == ncols:
        return values
    matrix = np.tile(fill, (len(values), 1))
    matrix[:, :ncols] = values
    return matrix


def _parse_block(data: bytes, ncols: int) -> np.ndarray | None:
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if not data.endswith(b"\n"):
        data += b"\n"
    buf = np.frombuffer(data, dtype=np.uint8)
    is_digit = (buf >= _ZERO) & (buf <= _NINE)
    is_sep = (buf == _COMMA) | (buf == _NEWLINE)
    is_dot, is_minus = buf == _DOT, buf == _MINUS
    if not (is_digit | is_sep | is_dot | is_minus).all():
        return None
    seps = np.flatnonzero(is_sep)
    ntok = len(seps)
    if ntok == 0 or ntok % ncols:
        return None
    newline_tokens = np.flatnonzero(buf[seps] == _NEWLINE)
    if not np.array_equal(newline_tokens, np.arange(ncols - 1, ntok, ncols)):
        return None  # a line with another column count, or a blank line
    starts = np.concatenate([[0], seps[:-1] + 1])
    token = np.cumsum(is_sep, dtype=np.int32) - is_sep  # token index of every byte
    digits = np.cumsum(is_digit, dtype=np.int32)  # digits up to and including each byte
    end_digits = digits[seps]  # digits up to each token's end
    total_digits = end_digits - (digits[starts] - is_digit[starts])
    if (total_digits == 0).any() or (total_digits > 15).any():
        return None
    minus_at = np.flatnonzero(is_minus)
    if minus_at.size and not np.array_equal(minus_at, starts[token[minus_at]]):
        return None  # '-' anywhere but first
    dots = np.flatnonzero(is_dot)
    if np.bincount(token[dots], minlength=ntok).max(initial=0) > 1:
        return None
    # each digit weighs 10 ** (digits to its right in its token)
    at = np.flatnonzero(is_digit)
    digit_token = token[at]
    right = end_digits[digit_token] - digits[at]
    # partial sums are integers below 10**15 < 2**53, so float64 accumulates them exactly
    mantissa = np.bincount(digit_token, weights=(buf[at] - _ZERO) * _POW10[right], minlength=ntok)
    frac = np.zeros(ntok, dtype=np.int64)
    frac[token[dots]] = end_digits[token[dots]] - digits[dots]
    values = mantissa / 10.0**frac
    negative = np.zeros(ntok, dtype=bool)
    negative[token[minus_at]] = True
    values[negative] = -values[negative]
    return values.reshape(-1, ncols)
