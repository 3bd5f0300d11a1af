"""YUV 4:2:0 to BGR in torch, on any device, bit-equal to the CPU decoder's frames.

Why our own: a GPU decoder (NVDEC, `shared.nvdec`) hands over YUV planes, and the models were run and
checked on the BGR frames PyAV gives (`frame.to_ndarray(format="bgr24")`, FFmpeg's swscale). NVDEC's own
YUV->RGB conversion is PyNvVideoCodec's CUDA code, not swscale's, and a float BT.601 formula differs from
swscale by up to 3 levels in 55 % of the channel values of a random frame (measured), so the same video
would give other detections on a GPU than on a CPU. swscale converts 8-bit 4:2:0 without scaling in 16-bit fixed
point (on x86 its SSSE3 path; coefficients from its `ff_yuv2rgb_coeffs` table in 13-bit precision, chroma
taken as it is for each 2x2 block). `yuv420_to_bgr` does the same arithmetic in int32 on whole frames.

The arithmetic is swscale's on x86; another machine's FFmpeg build may convert otherwise. So
`matches_pyav` asks the installed PyAV once per kind of frame (size, matrix, range) with a random frame,
and a caller uses this conversion only when it gives PyAV's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

# swscale's inverse matrices (16.16 fixed point: Cr->R, Cb->B, Cb->G, Cr->G, for limited range), for the
# AVColorSpace values a frame carries; an unspecified matrix is converted as BT.601, as swscale does
_BT601 = (104597, 132201, 25675, 53279)
_BT709 = (117489, 138438, 13975, 34925)
_MATRICES = {1: _BT709, 2: _BT601, 5: _BT601, 6: _BT601}  # BT709, unspecified, BT470BG, SMPTE170M
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@dataclass(frozen=True)
class Conversion:
    """swscale's 16-bit coefficients for one matrix and range (13-bit fraction; `y_offset` in Y x 8)."""

    y_coeff: int
    y_offset: int
    v_to_r: int
    u_to_b: int
    u_to_g: int
    v_to_g: int


def _round16(value: int) -> int:
    return (value + 0x8000) >> 16


def _scale_toward_zero(value: int, num: int, den: int) -> int:
    """C's integer division (truncates toward zero), as swscale computes it."""
    scaled = abs(value) * num // den
    return scaled if value >= 0 else -scaled


@lru_cache(maxsize=16)
def conversion(colorspace: int, color_range: int, pixel_format: str = "yuv420p") -> Conversion | None:
    """The coefficients swscale uses for frames of this AVColorSpace / AVColorRange / format; None for a
    matrix or format this module does not reproduce (the caller keeps the CPU decoder)."""
    matrix = _MATRICES.get(colorspace)
    if matrix is None or pixel_format not in ("yuv420p", "yuvj420p"):
        return None
    v_r, u_b, u_g, v_g = matrix[0], matrix[1], -matrix[2], -matrix[3]
    if color_range == _FULL_RANGE or pixel_format == "yuvj420p":
        y_coeff, y_offset = 1 << 16, 0
        v_r, u_b, u_g, v_g = (_scale_toward_zero(c, 224, 255) for c in (v_r, u_b, u_g, v_g))
    else:
        y_coeff, y_offset = (1 << 16) * 255 // 219, 16 << 16
    return Conversion(
        y_coeff=_round16(y_coeff << 13),
        y_offset=_round16(y_offset << 3),
        v_to_r=_round16(v_r << 13),
        u_to_b=_round16(u_b << 13),
        u_to_g=_round16(u_g << 13),
        v_to_g=_round16(v_g << 13),
    )


def yuv420_to_bgr(luma: torch.Tensor, chroma: torch.Tensor, coefficients: Conversion) -> torch.Tensor:
    """(H, W) uint8 Y and (H/2, W/2, 2) uint8 interleaved U, V (NV12's layout) -> (H, W, 3) uint8 BGR on
    their device. Even H and W only (what 4:2:0 video has)."""
    c = coefficients
    height, width = luma.shape
    # each product is taken >> 16 on its own (swscale's pmulhw: floor), then summed and clipped
    y = ((luma.to(torch.int32) * 8 - c.y_offset) * c.y_coeff) >> 16
    u = chroma[..., 0].to(torch.int32) * 8 - 1024
    v = chroma[..., 1].to(torch.int32) * 8 - 1024
    parts = ((u * c.u_to_b) >> 16, ((u * c.u_to_g) >> 16) + ((v * c.v_to_g) >> 16), (v * c.v_to_r) >> 16)
    bgr = torch.empty((height, width, 3), dtype=torch.uint8, device=luma.device)
    for channel, part in enumerate(parts):  # each chroma value serves a 2x2 block of pixels
        block = part[:, None, :, None].expand(height // 2, 2, width // 2, 2).reshape(height, width)
        bgr[..., channel] = (y + block).clamp_(0, 255)
    return bgr


def frame_kind(frame) -> tuple[int, int, int, int, str]:
    """What decides a PyAV frame's conversion: width, height, AVColorSpace, AVColorRange, pixel format."""
    return frame.width, frame.height, int(frame.colorspace), int(frame.color_range), frame.format.name


@lru_cache(maxsize=16)
def matches_pyav(width: int, height: int, colorspace: int, color_range: int, pixel_format: str) -> bool:
    """Whether `yuv420_to_bgr` gives what the installed PyAV gives for a frame of this kind (a random one)."""
    import av

    coefficients = conversion(colorspace, color_range, pixel_format)
    if coefficients is None or width % 2 or height % 2:
        return False
    planes = np.random.default_rng(width * 31 + height).integers(0, 256, (height * 3 // 2, width), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.colorspace, frame.color_range = colorspace, color_range
    if pixel_format == "yuvj420p":
        frame.color_range = _FULL_RANGE
    wanted = frame.to_ndarray(format="bgr24")
    luma, chroma = split_yuv420p(torch.from_numpy(planes), width, height)
    return bool(np.array_equal(yuv420_to_bgr(luma, chroma, coefficients).numpy(), wanted))


def split_yuv420p(planes: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PyAV's `to_ndarray(format="yuv420p")` layout ((H*3/2, W): Y, then U, then V) -> Y and NV12 chroma."""
    flat = planes.reshape(-1)
    quarter = width * height // 4
    u = flat[width * height : width * height + quarter].view(height // 2, width // 2)
    v = flat[width * height + quarter :].view(height // 2, width // 2)
    return flat[: width * height].view(height, width), torch.stack([u, v], dim=-1)


def split_nv12(planes: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NV12 ((H*3/2, W): Y, then U and V interleaved) -> Y and chroma views (no copy)."""
    flat = planes.reshape(-1)
    return flat[: width * height].view(height, width), flat[width * height :].view(height // 2, width // 2, 2)
