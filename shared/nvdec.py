"""A video's frames decoded by the GPU (NVDEC, through NVIDIA's optional `PyNvVideoCodec`) into device memory,
as BGR tensors byte-equal to the frames the CPU decoder gives.

Why: on a GPU the host's decoder is what holds D-FINE N back (docs/performance.md, "Feeding the GPU"): one
1080p frame costs the host ~3 ms to decode and convert, the model a fraction of that. NVDEC decodes on the
GPU's own video engines; the frames never cross the PCIe bus, and D-FINE resizes them there
(`services/detector/dfine/resize.py`).

Used only where it gives the CPU path's bytes, so that a video's det_db does not depend on the machine:
H.264/HEVC decoding is exact, so NVDEC's YUV planes are the software decoder's; NVDEC's own YUV->RGB
conversion is not swscale's, so the planes (NV12) are converted by `shared.yuv`, itself checked against
the installed PyAV for this video's kind of frame; and the first frame NVDEC gives must equal PyAV's BGR
frame byte for byte. Anything else (not installed, another matrix, a different first frame, an error)
leaves the CPU decoder in charge and says why. `MOTPIPE_NVDEC=off` turns it off.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING

from shared.frames import FrameSource, Prefetch
from shared.settings import get_settings
from shared.video import iter_video_frames

if TYPE_CHECKING:
    import torch


class NvdecUnusable(Exception):
    """Why this video is decoded on the CPU after all."""


def installed() -> bool:
    """Whether PyNvVideoCodec can be imported (asked without importing it, or torch)."""
    return importlib.util.find_spec("PyNvVideoCodec") is not None


def wanted() -> bool:
    """Whether a GPU detector should try NVDEC: installed and not turned off (`MOTPIPE_NVDEC=off`)."""
    return get_settings().nvdec != "off" and installed()


def decoded_frames(
    decoder, kind: tuple, batch: int, stream: torch.cuda.Stream | None = None
) -> Iterator[tuple[int, torch.Tensor]]:
    """(1-based frame number, (H, W, 3) uint8 BGR on the decoder's device) from a decoder with
    PyNvVideoCodec's `get_batch_frames(n)` (an empty list at the end) whose frames hold NV12 planes (DLPack).
    `kind`: `shared.yuv.frame_kind` of the video's frames; `stream`: the CUDA stream the decoder writes on,
    where the conversion runs too (after the decoder's copies, without waiting on the model's work)."""
    import torch

    from shared.yuv import conversion, split_nv12, yuv420_to_bgr

    width, height = kind[:2]
    coefficients = conversion(*kind[2:])
    number = 0
    while frames := decoder.get_batch_frames(batch):
        images = []
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            for frame in frames:
                planes = torch.from_dlpack(frame)
                if planes.numel() != width * height * 3 // 2:
                    raise NvdecUnusable(f"NVDEC gave a {tuple(planes.shape)} frame for {width}x{height} NV12")
                images.append(yuv420_to_bgr(*split_nv12(planes, width, height), coefficients))
        if stream is not None:  # the decoder reuses its frame buffers, and the model reads on another stream
            stream.synchronize()
            for image in images:  # made on this stream: not to be reused before the model's stream is done
                image.record_stream(torch.cuda.default_stream(image.device))
        for image in images:
            number += 1
            yield number, image


def nvdec_frames(source: FrameSource, device: str, batch: int = 8, depth: int = 64) -> tuple[Prefetch | None, str]:
    """(the frames, decoded ahead in a thread, and a note saying so) or (None, why the CPU decodes them)."""
    if source.video is None:
        return None, "images, not a video"
    import torch

    from shared.yuv import frame_kind, matches_pyav

    try:
        import PyNvVideoCodec as nvc

        first = next(iter_video_frames(source.video))
        kind = frame_kind(first)
        if not matches_pyav(*kind):
            raise NvdecUnusable(
                f"PyAV's BGR for {kind[4]} frames of matrix {kind[2]}, range {kind[3]} is not reproduced here"
            )
        stream = torch.cuda.Stream(device) if torch.device(device).type == "cuda" else None
        decoder = nvc.SimpleDecoder(
            str(source.video),
            gpu_id=torch.device(device).index or 0,
            cuda_stream=stream.cuda_stream if stream else 0,  # 0: the decoder makes its own
            use_device_memory=True,
            output_color_type=nvc.OutputColorType.NATIVE,
        )
        frames = decoded_frames(decoder, kind, batch, stream)
        number, image = next(frames)
        if not torch.equal(image.cpu(), torch.from_numpy(first.to_ndarray(format="bgr24"))):
            raise NvdecUnusable("NVDEC's first frame differs from the CPU decoder's")
    except NvdecUnusable as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - an optional accelerator: any failure leaves the CPU decoder
        # the first line: PyNvVideoCodec's import errors go on with pages of troubleshooting advice
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        return None, f"NVDEC failed: {type(exc).__name__}: {first_line}"
    version = getattr(nvc, "__version__", "")
    return Prefetch(chain([(number, image)], frames), depth), f"frames decoded by NVDEC (PyNvVideoCodec {version})"
