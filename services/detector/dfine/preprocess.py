"""D-FINE's input preparation without torch: the official PIL bilinear resize to a square, as uint8 RGB.

It imports no torch so that `motpipe detect` can decode and resize frames in its frame thread while the
main thread is still importing torch (~1.3 s, one core); the detector turns the prepared pixels into the
model's float input (`detector.to_input`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class PreparedFrame:
    pixels: np.ndarray  # (size, size, 3) uint8 RGB
    width: int  # of the original frame
    height: int


def prepare(frame_bgr: np.ndarray, size: int = 640) -> PreparedFrame:
    """The official `Image.fromarray(cvtColor(BGR2RGB)).resize((size, size), BILINEAR)`, same bytes.

    PIL resamples each channel on its own, so the BGR frame is resized as it is and its channels reversed
    afterwards: a colour conversion of size*size pixels instead of the whole frame's."""
    height, width = frame_bgr.shape[:2]
    small = np.asarray(Image.fromarray(frame_bgr).resize((size, size), Image.BILINEAR))
    return PreparedFrame(np.ascontiguousarray(small[:, :, ::-1]), width, height)
