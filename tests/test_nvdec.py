"""GPU-decoded frames (`shared/nvdec.py`) are the CPU decoder's frames byte for byte, so a video's det_db does
not depend on which side decoded it.

What runs here: the YUV->BGR conversion (`shared/yuv.py`) against PyAV on random and on real decoded frames
of every matrix and range it claims; and the NVDEC path end to end (first-frame check, batches, the detector
taking tensors, `run_detection`'s choice and notes) with a stand-in for NVIDIA's `PyNvVideoCodec` that hands
out NV12 planes as its `SimpleDecoder` does (DLPack, `get_batch_frames`). The real library needs a GPU:
`scripts/gpu_check.py` compares every frame it decodes with PyAV's there."""

import sys
import types

import av
import numpy as np
import pytest
import torch

from services.detector.dfine.configs import dfine_config
from services.detector.dfine.detector import DFINEDetector
from services.detector.dfine.model import DFINE
from services.detector.engine import run_detection
from shared import nvdec, yuv
from shared.frames import open_frames
from shared.schemas import DetectOptions
from shared.settings import get_settings
from shared.synth import render_scene, render_still_frames
from shared.video import iter_video_frames


@pytest.mark.parametrize("colorspace", [1, 2, 5, 6])  # BT.709, unspecified, BT.470BG, SMPTE 170M
@pytest.mark.parametrize("color_range", [0, 1, 2])  # unspecified, limited, full
@pytest.mark.parametrize("size", [(96, 64), (100, 64), (1920, 1080)])
def test_the_conversion_gives_pyavs_bytes(colorspace, color_range, size):
    assert yuv.matches_pyav(*size, colorspace, color_range, "yuv420p")


def test_a_matrix_it_does_not_know_is_left_to_the_cpu():
    assert yuv.conversion(9, 1) is None  # BT.2020
    assert not yuv.matches_pyav(64, 64, 9, 1, "yuv420p")
    assert not yuv.matches_pyav(65, 64, 2, 0, "yuv420p")  # odd sizes: 4:2:0 chroma rounds up


def write_tagged(path, colorspace: int, color_range: int, frames: int = 3):
    """A short H.264 clip whose frames say which matrix and range they use (phone videos say BT.709)."""
    rng = np.random.default_rng(colorspace * 10 + color_range)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.codec_context.colorspace, stream.codec_context.color_range = colorspace, color_range
        for _ in range(frames):
            image = av.VideoFrame.from_ndarray(rng.integers(0, 256, (180, 320, 3), dtype=np.uint8), format="bgr24")
            image = image.reformat(format="yuv420p", dst_colorspace=colorspace, dst_color_range=color_range)
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_decoded_frames_convert_to_pyavs_bgr(tmp_path):
    videos = [render_scene(tmp_path / "synth", frames=3, seed=1, size=(640, 360)).video]
    videos += [write_tagged(tmp_path / f"bt709_{r}.mp4", 1, r) for r in (1, 2)]
    kinds = set()
    for video in videos:
        for frame in iter_video_frames(video):
            kind = yuv.frame_kind(frame)
            kinds.add(kind[2:])
            planes = torch.from_numpy(frame.to_ndarray(format="nv12"))
            got = yuv.yuv420_to_bgr(*yuv.split_nv12(planes, frame.width, frame.height), yuv.conversion(*kind[2:]))
            np.testing.assert_array_equal(got.numpy(), frame.to_ndarray(format="bgr24"))
    assert kinds == {(2, 0, "yuv420p"), (1, 1, "yuv420p"), (1, 2, "yuvj420p")}


class FakeDecodedFrames:
    """NVIDIA's SimpleDecoder as `nvdec` uses it: `get_batch_frames(n)` gives up to n frames holding NV12
    planes (DLPack), then an empty list. Here the planes come from PyAV; `damage` alters the first frame's."""

    damage = False
    opened: list = []

    def __init__(self, path, gpu_id=0, cuda_stream=0, use_device_memory=True, output_color_type=None):
        self.opened.append((path, gpu_id, cuda_stream, use_device_memory, output_color_type))
        self.frames = iter_video_frames(path)

    def get_batch_frames(self, count):
        batch = []
        for frame in self.frames:
            planes = torch.from_numpy(frame.to_ndarray(format="nv12"))
            if self.damage and not batch:
                planes[0, 0] ^= 1
                self.damage = False
            batch.append(planes)
            if len(batch) == count:
                break
        return batch


@pytest.fixture
def fake_pynvvideocodec(monkeypatch):
    module = types.ModuleType("PyNvVideoCodec")
    module.__version__ = "stand-in"
    module.OutputColorType = types.SimpleNamespace(NATIVE="native")
    module.SimpleDecoder = type("SimpleDecoder", (FakeDecodedFrames,), {"opened": []})
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", module)
    monkeypatch.setattr(nvdec, "installed", lambda: True)  # find_spec refuses a module without a spec
    return module


def test_nvdec_frames_are_the_cpu_decoders_frames(tmp_path, fake_pynvvideocodec):
    video = render_scene(tmp_path / "clip", frames=7, seed=2, size=(480, 272)).video
    frames, note = nvdec.nvdec_frames(open_frames(video), "cpu", batch=3)
    assert note == "frames decoded by NVDEC (PyNvVideoCodec stand-in)"
    got = list(frames)
    wanted = list(open_frames(video))
    assert [n for n, _ in got] == [n for n, _ in wanted] == list(range(1, 8))
    for (_, ours), (_, theirs) in zip(got, wanted, strict=True):
        assert isinstance(ours, torch.Tensor)
        np.testing.assert_array_equal(ours.numpy(), theirs)
    assert fake_pynvvideocodec.SimpleDecoder.opened == [(str(video), 0, 0, True, "native")]


def test_nvdec_is_not_used_where_it_would_change_the_frames(tmp_path, fake_pynvvideocodec):
    video = render_scene(tmp_path / "clip", frames=2, seed=2, size=(480, 272)).video
    fake_pynvvideocodec.SimpleDecoder.damage = True
    assert nvdec.nvdec_frames(open_frames(video), "cpu") == (None, "NVDEC's first frame differs from the CPU decoder's")

    def refuse(*args, **kwargs):
        raise RuntimeError("no NVDEC engine for this codec\n\n=== TROUBLESHOOTING STEPS ===\n1. ...")

    fake_pynvvideocodec.SimpleDecoder = refuse
    assert nvdec.nvdec_frames(open_frames(video), "cpu") == (
        None,
        "NVDEC failed: RuntimeError: no NVDEC engine for this codec",
    )
    bt2020 = write_tagged(tmp_path / "bt2020.mp4", 9, 1, frames=1)
    frames, why = nvdec.nvdec_frames(open_frames(bt2020), "cpu")
    assert frames is None and why == "PyAV's BGR for yuv420p frames of matrix 9, range 1 is not reproduced here"
    stills = render_still_frames(tmp_path / "stills", frames=2, size=64)
    assert nvdec.nvdec_frames(open_frames(stills / "frames"), "cpu") == (None, "images, not a video")


@pytest.fixture(scope="module")
def model():
    """Initial weights: unlike the filled parity weights, their outputs change with the input."""
    torch.manual_seed(0)
    return DFINE(dfine_config("n", "coco")).deploy()


def test_run_detection_reads_through_nvdec_and_writes_the_same_det_db(
    tmp_path, model, fake_pynvvideocodec, monkeypatch
):
    video = render_scene(tmp_path / "clip", frames=4, seed=2, size=(480, 272)).video
    options = DetectOptions(detector="dfine", score_threshold=0.05, sequence="clip")
    batched = {"batch_size": 2, "workers": 2}  # as on a GPU

    def detect(**change):
        detector = DFINEDetector(model, "cpu", resize_on_device=True, **batched)
        detector.takes_device_frames = True  # what a CUDA device says; NVDEC's stand-in runs on the CPU
        result = run_detection(open_frames(video), detector, options)
        return {f: rows.tolist() for f, rows in result.per_frame.items()}, result.info.notes

    on_the_cpu = run_detection(open_frames(video), DFINEDetector(model, "cpu", resize_on_device=False, **batched),
                               options)  # fmt: skip
    wanted = {f: rows.tolist() for f, rows in on_the_cpu.per_frame.items()}
    assert sum(len(rows) for rows in wanted.values()) > 0 and len({str(r) for r in wanted.values()}) == 4

    through_nvdec, notes = detect()
    assert through_nvdec == wanted
    assert "frames decoded by NVDEC (PyNvVideoCodec stand-in)" in notes

    fake_pynvvideocodec.SimpleDecoder.damage = True
    fell_back, notes = detect()
    assert fell_back == wanted
    assert "frames decoded on the CPU: NVDEC's first frame differs from the CPU decoder's" in notes

    monkeypatch.setenv("MOTPIPE_NVDEC", "off")
    get_settings.cache_clear()
    try:
        turned_off, notes = detect()
    finally:
        get_settings.cache_clear()
    assert turned_off == wanted and not [n for n in notes if "NVDEC" in n]
