"""`dfine` behind the detector interface: frames in batches on the device, official preprocessing
(PIL bilinear resize to 640x640 — on a GPU done there, bit-equal, `resize.py` — no normalisation),
deploy-mode model with the backbone fused for inference (`fuse.py`), top-300 postprocessing.

On a CPU two frames run at once, each on its own thread with half the cores: the model's many small,
memory-bound layers keep one frame from using two cores well (measured on 2 cores, N: 127 ms/frame on 2
threads, 87 ms/frame for two frames side by side on one thread each; `benchmarks/detect_speed.py`).
On a GPU two batches are in flight, on two threads: one stacks and uploads its frames (~200 MB for 32
1080p frames) while the device runs the other's, instead of the device waiting for each copy.
Frames may arrive prepared (`preprocess.PreparedFrame`, resized in the frame thread) or as BGR arrays, or as
BGR tensors already on the device (decoded by NVDEC, `shared/nvdec.py`).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from shared.errors import InputError

from .configs import NUM_CLASSES, dfine_config
from .fuse import fuse_backbone
from .model import DFINE, postprocess
from .preprocess import PreparedFrame, prepare
from .resize import to_batch_resized

NAME = "dfine"


# a frame as the detector takes it: BGR on the host or on the device (NVDEC), or resized on the host
Frame = np.ndarray | torch.Tensor | PreparedFrame


def host_image(frame: np.ndarray | torch.Tensor) -> np.ndarray:
    return frame.cpu().numpy() if isinstance(frame, torch.Tensor) else frame


def to_input(frame: PreparedFrame) -> torch.Tensor:
    """(3, size, size) float in 0..1, as the official ToTensor (uint8 -> float, then / 255)."""
    return torch.from_numpy(frame.pixels).permute(2, 0, 1).contiguous().float().div(255)


def to_batch(frames: list[PreparedFrame], device: str) -> torch.Tensor:
    """(n, 3, size, size) float on `device`, each image as `to_input` makes it: the frames travel as uint8 and
    become floats there (a quarter of the bytes to copy to a GPU, and no float work on the host)."""
    pixels = torch.from_numpy(np.stack([f.pixels for f in frames])).to(device, non_blocking=True)
    return pixels.permute(0, 3, 1, 2).contiguous().float().div(255)


def preprocess(frame_bgr: np.ndarray, size: int = 640) -> torch.Tensor:
    """(3, 640, 640) float in 0..1, exactly as the official script (PIL resize, ToTensor)."""
    return to_input(prepare(frame_bgr, size))


def detection_rows(batch: list, labels: np.ndarray, xyxy: np.ndarray, scores: np.ndarray) -> list:
    """(frame number, rows l, t, w, h, score, label) per frame of `batch` from the post-processed outputs."""
    out = []
    for i, (number, _) in enumerate(batch):
        b = xyxy[i].astype(np.float64)
        out.append((number, np.column_stack([b[:, :2], b[:, 2:] - b[:, :2], scores[i], labels[i]])))
    return out


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(weights, motpipe metadata): `checkpoint["ema"]["module"]` when present, else `checkpoint["model"]`
    (weights_only load); the metadata of a motpipe fine-tune (`motpipe`: size, num_classes, class names) or {}."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("checkpoint not found", source=str(path)) from None
    except Exception as exc:
        raise InputError(f"not a loadable D-FINE checkpoint ({type(exc).__name__}: {exc})", source=str(path)) from None
    if isinstance(checkpoint, dict):
        meta = checkpoint.get("motpipe") if isinstance(checkpoint.get("motpipe"), dict) else {}
        ema = checkpoint.get("ema")
        if isinstance(ema, dict) and isinstance(ema.get("module"), dict):
            return ema["module"], meta
        if isinstance(checkpoint.get("model"), dict):
            return checkpoint["model"], meta
    raise InputError("expected checkpoint['ema']['module'] or checkpoint['model']", source=str(path))


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)[0]


def check_state(model: DFINE, state: dict[str, torch.Tensor], what: str, path) -> None:
    """Refuse a checkpoint whose keys or shapes are not this model's, naming the first few differences."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]  # fmt: skip
    if missing or unexpected or wrong:
        raise InputError(
            f"checkpoint does not match D-FINE {what}: missing {missing[:3]}, unexpected {unexpected[:3]}, "
            f"shape {wrong[:3]}",
            source=str(path),
        )


def load_dfine(path: str | os.PathLike, size: str, dataset: str) -> DFINE:
    """Deploy-mode model; a motpipe fine-tune's own class count (and size) override `size`/`dataset`."""
    state, meta = read_checkpoint(path)
    size = meta.get("size", size)
    try:
        cfg = dfine_config(size, dataset)
    except ValueError as exc:
        raise InputError(str(exc), field="size/dataset") from None
    if meta.get("num_classes"):
        cfg["num_classes"] = int(meta["num_classes"])
    # a fine-tune at another input size runs at that size: the anchors are a function of it, not weights
    pixels = int(meta.get("img_size", 640))
    cfg["eval_spatial_size"] = [pixels, pixels]
    model = DFINE(cfg)
    if pixels != 640:
        state = {
            **state,
            **{k: v for k, v in model.state_dict().items() if k in ("decoder.anchors", "decoder.valid_mask")},
        }
    check_state(model, state, f"{size}/{dataset}", path)
    model.load_state_dict(state, strict=True)
    model.class_names = list(meta.get("classes") or [])
    model.input_size = pixels
    return model.deploy()


class DFINEDetector:
    name = NAME

    def __init__(
        self,
        model: DFINE,
        device: str = "cpu",
        batch_size: int | None = None,
        autocast: bool = False,
        workers: int | None = None,
        resize_on_device: bool | None = None,
        device_frames: bool = True,
    ):
        self.model = (fuse_backbone(model) if isinstance(model, DFINE) else model).to(device)
        self.class_names: list[str] = getattr(model, "class_names", [])  # a motpipe fine-tune's classes
        self.input_size: int = getattr(model, "input_size", 640)
        self.device = device
        # a CPU runs one frame at a time fastest (benchmarks/detect_speed.py: batch 1 ~1.8x batch 8); a GPU
        # wants batches
        self.batch_size = batch_size or (32 if device.startswith("cuda") else 1)
        self.autocast = autocast and device.startswith("cuda")
        # batches in flight at once: two on a CPU with two or more threads (see the module docstring); two on
        # a GPU, so that one thread stacks and uploads the next batch while the other waits for the device
        on_cpu = not device.startswith("cuda")
        self.workers = workers or (2 if not on_cpu or torch.get_num_threads() >= 2 else 1)
        # a GPU resizes the frames itself, bit-equal to Pillow (`resize.py`): the host only decodes; a CPU
        # runs Pillow in the frame threads, beside the model
        self.resize_on_device = not on_cpu if resize_on_device is None else resize_on_device
        # frames decoded on the device (NVDEC, `run_detection`) are resized there too; `device_frames=False`
        # keeps decoding on the host (the GPU check's comparison)
        self.takes_device_frames = device_frames and self.resize_on_device and not on_cpu

    @classmethod
    def from_weights(cls, weights, size: str, dataset: str, device: str = "cpu", **kwargs) -> DFINEDetector:
        if not weights:
            raise InputError("dfine needs --weights CHECKPOINT", field="weights")
        if dataset not in NUM_CLASSES:
            raise InputError(f"unknown dataset {dataset!r}; known: {sorted(NUM_CLASSES)}", field="dataset")
        return cls(load_dfine(weights, size, dataset), device, **kwargs)

    def prepare_frame(self, frame: Frame) -> Frame:
        """What the frame thread may run ahead of the model (no torch involved): Pillow's resize, unless
        the device resizes (then the BGR frame as it is)."""
        if not isinstance(frame, PreparedFrame):
            return frame if self.resize_on_device else prepare(host_image(frame), self.input_size)
        if frame.pixels.shape[0] != self.input_size:
            raise ValueError(f"frame prepared at {frame.pixels.shape[0]} px; this model takes {self.input_size}")
        return frame

    @torch.inference_mode()
    def _run(self, batch: list[tuple[int, Frame]]) -> list[tuple[int, np.ndarray]]:
        frames = [self.prepare_frame(img) for _, img in batch]
        images = self._input(frames)
        sizes = [(f.width, f.height) if isinstance(f, PreparedFrame) else (f.shape[1], f.shape[0]) for f in frames]
        sizes = torch.tensor(sizes, dtype=torch.float32, device=self.device)
        context = torch.autocast("cuda", dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        with context:
            logits, boxes = self.model(images)
        labels, xyxy, scores = postprocess(logits.float(), boxes.float(), sizes)
        return detection_rows(batch, labels.cpu().numpy(), xyxy.cpu().numpy(), scores.cpu().numpy())

    def _input(self, frames: list[Frame]) -> torch.Tensor:
        """The model's (n, 3, size, size) float input on the device, from frames resized here or there."""
        if not any(isinstance(f, PreparedFrame) for f in frames):
            pixels = to_batch_resized(frames, self.input_size, self.device)
            if pixels is not None:
                return pixels.float().div(255)
        # a size whose resize the device cannot reproduce, or frames prepared on the host (`motpipe detect`
        # starts before it knows the device)
        return to_batch(
            [f if isinstance(f, PreparedFrame) else prepare(host_image(f), self.input_size) for f in frames],
            self.device,
        )

    def _batches(self, frames: Iterable[tuple[int, Frame]]) -> Iterator[list]:
        batch: list = []
        for item in frames:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def detect(self, frames: Iterable[tuple[int, Frame]]) -> Iterator[tuple[int, np.ndarray]]:
        """(frame number, rows l,t,w,h,score,label) in the frames' order."""
        if self.workers == 1:
            for batch in self._batches(frames):
                yield from self._run(batch)
            return
        threads = torch.get_num_threads()
        if not self.device.startswith("cuda"):  # the model's CPU threads shared out; process-wide: restored below
            torch.set_num_threads(max(1, threads // self.workers))
        try:
            with ThreadPoolExecutor(self.workers, thread_name_prefix="dfine") as pool:
                pending: deque = deque()
                for batch in self._batches(frames):
                    pending.append(pool.submit(self._run, batch))
                    if len(pending) > self.workers:
                        yield from pending.popleft().result()
                while pending:
                    yield from pending.popleft().result()
        finally:
            torch.set_num_threads(threads)
