"""D-FINE's frames resized on the device (`resize.py`) give the bytes of the official Pillow resize, so the
model sees the same input and writes the same det_db whichever side resizes. Run here on the CPU device:
the same torch code a GPU runs."""

import numpy as np
import pytest
import torch
from PIL import Image

from services.detector.dfine import detector as detector_module
from services.detector.dfine import resize
from services.detector.dfine.configs import dfine_config
from services.detector.dfine.detector import DFINEDetector
from services.detector.dfine.model import DFINE
from services.detector.engine import run_detection
from shared.frames import open_frames
from shared.schemas import DetectOptions
from shared.synth import render_scene


def frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Noise with hard edges: every tap of the filter counts, and saturated areas test the clipping."""
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[: height // 3] = 255
    image[:, : width // 4, 1] = 0
    return image


def pillow(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


@pytest.mark.parametrize(
    "size, out",
    [
        ((1280, 720), (640, 640)),  # the benchmarks' frames
        ((1920, 1080), (640, 640)),  # the group's
        ((320, 180), (640, 640)),  # enlarged both ways
        ((360, 640), (640, 640)),  # portrait: Pillow 13 resizes its rows first
        ((333, 1001), (640, 640)),
        ((7, 5), (640, 640)),
        ((1000, 700), (512, 300)),
        ((640, 500), (640, 640)),  # one pass only
    ],
)
def test_the_device_resize_gives_pillows_bytes(size, out):
    image = frame(*size)
    rows_first = resize.pass_order(*size, *out, "cpu")
    assert rows_first is not None, f"neither pass order reproduces this Pillow for {size} -> {out}"
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None]
    got = resize.resize_like_pillow(pixels, *out, rows_first)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, pillow(image, *out))


def test_a_batch_of_mixed_sizes_comes_out_in_order_as_rgb():
    frames = [frame(1280, 720, 1), frame(360, 640, 2), frame(1280, 720, 3), frame(1280, 720, 4)]
    batch = resize.to_batch_resized(frames, 640, "cpu")
    assert batch.dtype == torch.uint8 and batch.shape == (4, 3, 640, 640)
    for got, image in zip(batch, frames, strict=True):
        np.testing.assert_array_equal(got.permute(1, 2, 0).numpy(), pillow(image, 640, 640)[:, :, ::-1])


def detections(detector, video, options) -> dict[int, list]:
    """Frame -> the detector's rows (box, score, label) as lists, to compare exactly."""
    return {f: rows.tolist() for f, rows in run_detection(open_frames(video), detector, options).per_frame.items()}


@pytest.fixture(scope="module")
def model():
    """Initial weights: unlike the filled parity weights, their outputs change with the input."""
    torch.manual_seed(0)
    return DFINE(dfine_config("n", "coco")).deploy()


def test_the_model_input_and_det_db_equal_the_host_resize(model, tmp_path, monkeypatch):
    scene = render_scene(tmp_path / "clip", frames=3, seed=2, size=(480, 272))
    frames = [image for _, image in open_frames(scene.video)]
    host = DFINEDetector(model, "cpu", resize_on_device=False, workers=1)
    device = DFINEDetector(model, "cpu", resize_on_device=True, workers=1)
    assert torch.equal(device._input([device.prepare_frame(f) for f in frames]),
                       host._input([host.prepare_frame(f) for f in frames]))  # fmt: skip

    resized_there = []
    real = detector_module.to_batch_resized
    monkeypatch.setattr(detector_module, "to_batch_resized", lambda *a: resized_there.append(1) or real(*a))
    options = DetectOptions(detector="dfine", score_threshold=0.05, sequence="clip")
    on_device = detections(device, scene.video, options)
    assert len(resized_there) == 3  # batch 1 on a CPU: every frame resized by the device path
    assert on_device == detections(host, scene.video, options)
    assert sum(len(rows) for rows in on_device.values()) > 0
    assert len({str(rows) for rows in on_device.values()}) == 3  # the model answers each frame differently
    # as on a GPU: batches of several frames, two batches in flight on two threads (batched convolutions
    # round differently from single frames, so against the host resize batched the same way)
    batched = {"batch_size": 2, "workers": 2}
    as_on_a_gpu = detections(DFINEDetector(model, "cpu", resize_on_device=True, **batched), scene.video, options)
    assert as_on_a_gpu == detections(
        DFINEDetector(model, "cpu", resize_on_device=False, **batched), scene.video, options
    )
    assert sorted(as_on_a_gpu) == [1, 2, 3]

    # a size whose pass order is unknown: Pillow resizes it on the host, the det_db is the same
    monkeypatch.setattr(detector_module, "to_batch_resized", lambda *a: None)
    assert detections(device, scene.video, options) == on_device
