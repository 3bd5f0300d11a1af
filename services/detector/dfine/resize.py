"""Pillow's BILINEAR resize on torch tensors, bit-equal to Pillow, so a GPU can resize D-FINE's frames.

The official D-FINE input is `Image.resize((640, 640), BILINEAR)`. On the development VM that resize was
8.8 of the 11.6 ms of host work per 1280x720 frame (docs/performance.md): on a GPU host it is what keeps
the frame threads from feeding D-FINE N's ~1,450 frames/s. `torch.nn.functional.interpolate(...,
antialias=True)` is close to Pillow but not equal (up to 1/255 in ~15 % of a 1280x720 frame's pixels), and
the parity tests could not tell whether that matters: their filled-weight models answer the same for any
input. So this module does what Pillow's `Resample.c` does, in the same integer arithmetic: per output
pixel, the triangle filter widened by the scale factor, its weights normalised in double precision and
rounded to 22-bit fixed point, a horizontal pass rounded and clipped to 0..255, then a vertical pass over
its result. Every tap is a gather and a multiply-add over the whole batch (int32 cannot overflow: the
weights sum to about 2^22 and a pixel is below 2^8). The weights are computed once per size in plain
Python, whose floats are the C doubles Pillow uses, in Pillow's order (numpy's pairwise sums would not be).

Which pass comes first is Pillow's choice and has changed: releases up to 12 resize columns first always;
Pillow 13 resizes rows first for some sizes (a portrait 1080x1920 frame: rows first; landscape video: columns
first). So the order is not assumed: `pass_order` asks the installed Pillow once per frame size, with a
random image of that size, and a size for which neither order gives Pillow's bytes is resized by Pillow on
the host (`to_batch_resized` answers None).
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import groupby

import numpy as np
import torch
from PIL import Image

PRECISION_BITS = 22  # Pillow: 32 bits - 8 for the pixel - 2 for filters that overshoot


def _triangle(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


@lru_cache(maxsize=64)
def pillow_taps(in_size: int, out_size: int) -> tuple[list[list[int]], list[list[int]]]:
    """(source index, fixed-point weight) per tap, one row per output pixel; rows padded with weight 0."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = filter_scale  # the triangle's support (1) widened when shrinking
    width = math.ceil(support) * 2 + 1
    inverse = 1.0 / filter_scale
    indices, weights = [], []
    for out in range(out_size):
        center = (out + 0.5) * scale
        first = max(int(center - support + 0.5), 0)
        count = min(int(center + support + 0.5), in_size) - first
        raw = [_triangle((x + first - center + 0.5) * inverse) for x in range(count)]
        total = 0.0
        for w in raw:  # summed in order, as Pillow does
            total += w
        normalised = [w / total if total != 0.0 else w for w in raw]
        fixed = [int(0.5 + w * (1 << PRECISION_BITS)) for w in normalised]
        padding = width - count
        indices.append([first + x for x in range(count)] + [first] * padding)
        weights.append(fixed + [0] * padding)
    return indices, weights


@lru_cache(maxsize=64)
def _taps_on(in_size: int, out_size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(taps, out) index and int32 weight tensors on `device`, one column per tap."""
    indices, weights = pillow_taps(in_size, out_size)
    index = torch.tensor(indices, dtype=torch.long).t().contiguous().to(device)
    weight = torch.tensor(weights, dtype=torch.int32).t().contiguous().to(device)
    return index, weight


def _pass(pixels: torch.Tensor, out_size: int, dim: int) -> torch.Tensor:
    """One of Pillow's two passes along `dim` (-1 columns, -2 rows) of int32 pixels, rounded and clipped."""
    index, weight = _taps_on(pixels.shape[dim], out_size, str(pixels.device))
    shape = (-1,) if dim == -1 else (-1, 1)
    total = None
    for tap_index, tap_weight in zip(index, weight, strict=True):  # in place: a 1080p batch is large
        term = pixels.index_select(dim, tap_index).mul_(tap_weight.view(shape))
        total = term if total is None else total.add_(term)
    # Pillow starts its sum at half a unit (rounding); exact integers, so adding it last is the same
    return total.add_(1 << (PRECISION_BITS - 1)).bitwise_right_shift_(PRECISION_BITS).clamp_(0, 255)


def resize_like_pillow(pixels: torch.Tensor, width: int, height: int, rows_first: bool = False) -> torch.Tensor:
    """(n, channels, H, W) uint8 -> (n, channels, height, width) uint8, Pillow's BILINEAR resize of each
    image with its passes in the given order; a dimension already at its size is not resampled."""
    out = pixels.to(torch.int32)
    for dim in (-2, -1) if rows_first else (-1, -2):
        wanted = height if dim == -2 else width
        if out.shape[dim] != wanted:
            out = _pass(out, wanted, dim)
    return out.to(torch.uint8)


@lru_cache(maxsize=32)
def pass_order(width: int, height: int, out_width: int, out_height: int, device: str) -> bool | None:
    """True when the installed Pillow resizes a width x height image's rows first, False when its columns
    first, None when neither order here gives its bytes: found by resizing a random image of that size."""
    image = np.random.default_rng(width * 7919 + height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    wanted = torch.from_numpy(np.array(Image.fromarray(image).resize((out_width, out_height), Image.BILINEAR)))
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].to(device)
    for rows_first in (False, True):
        ours = resize_like_pillow(pixels, out_width, out_height, rows_first)[0].permute(1, 2, 0).cpu()
        if torch.equal(ours, wanted):
            return rows_first
    return None


def _upload(frames: list[np.ndarray | torch.Tensor], device: str) -> torch.Tensor:
    """(n, H, W, 3) uint8 on `device`; staged in pinned memory for a GPU (an asynchronous copy). Frames that
    are tensors (decoded on the device) are stacked where they are."""
    if isinstance(frames[0], torch.Tensor):
        return torch.stack(frames).to(device)
    staging = torch.empty((len(frames), *frames[0].shape), dtype=torch.uint8, pin_memory=device.startswith("cuda"))
    np.stack(frames, out=staging.numpy())
    return staging.to(device, non_blocking=True)


def to_batch_resized(frames_bgr: list[np.ndarray | torch.Tensor], size: int, device: str) -> torch.Tensor | None:
    """(n, 3, size, size) uint8 RGB on `device`: the BGR frames sent as they are and resized there, each as
    Pillow would resize it; None when Pillow's order for one of their sizes is not known (`pass_order`)."""
    # images of a folder may differ in size; a video's frames do not
    shapes = {frame.shape[:2] for frame in frames_bgr}
    orders = {(h, w): pass_order(w, h, size, size, device) for h, w in shapes}
    if None in orders.values():
        return None
    resized = []
    for (height, width), group in groupby(frames_bgr, key=lambda frame: frame.shape[:2]):
        group = list(group)
        step = max(1, (1 << 24) // (height * width))  # ~16 M pixels at once: 32 4K frames as int32 are 3 GB
        for start in range(0, len(group), step):
            pixels = _upload(group[start : start + step], device).permute(0, 3, 1, 2)
            resized.append(resize_like_pillow(pixels, size, size, orders[height, width]))
    return torch.cat(resized).flip(1)  # BGR -> RGB afterwards: Pillow resizes each channel on its own
