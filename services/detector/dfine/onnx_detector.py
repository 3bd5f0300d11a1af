"""D-FINE from an ONNX export (`motpipe export dfine`) through ONNX Runtime: the same frames in, the same
det_db out as the PyTorch detector. Providers by device: on a GPU TensorRT (its engine built once and cached
beside the file, FP16 when the export asked for it) then CUDA, falling back to the CPU; on a CPU the CPU
provider. A fixed-batch export gets its batches padded to its size."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from shared.errors import InputError

from .detector import DFINEDetector, detection_rows
from .onnx_export import read_onnx_meta


def providers_for(device: str, path: Path, meta: dict) -> list:
    import onnxruntime as ort

    present = set(ort.get_available_providers())
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    index = int(device.split(":")[1]) if ":" in device else 0
    chosen: list = []
    if "TensorrtExecutionProvider" in present:
        cache = path.parent / f"{path.name}.trt"
        chosen.append(("TensorrtExecutionProvider", {"device_id": index, "trt_fp16_enable": bool(meta.get("fp16")),
                       "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache)}))  # fmt: skip
    if "CUDAExecutionProvider" in present:
        chosen.append(("CUDAExecutionProvider", {"device_id": index}))
    return [*chosen, "CPUExecutionProvider"]


class OnnxDFINEDetector(DFINEDetector):
    def __init__(self, path: str | os.PathLike, device: str = "cpu", batch_size: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        self.meta = read_onnx_meta(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise here
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers_for(device, path, self.meta))
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise InputError(
                f"ONNX Runtime cannot load it: {str(exc).splitlines()[0][:200]}", source=str(path)
            ) from None
        self.providers = self.session.get_providers()
        self.class_names = list(self.meta.get("classes") or [])
        self.input_size = int(self.meta["input_size"])
        self.device = device
        fixed = self.meta.get("batch")
        self.fixed_batch = fixed if isinstance(fixed, int) else None
        self.batch_size = self.fixed_batch or batch_size or (32 if device.startswith("cuda") else 1)
        self.autocast, self.workers = False, 1  # ONNX Runtime spreads one run over the cores itself
        # ONNX Runtime takes host arrays: Pillow resizes in the frame threads, and NVDEC's frames would only
        # come back to the host
        self.resize_on_device = self.takes_device_frames = False

    def _run(self, batch: list) -> list:
        frames = [self.prepare_frame(img) for _, img in batch]
        images = np.stack([f.pixels.transpose(2, 0, 1) for f in frames]).astype(np.float32) / 255.0
        sizes = np.array([[f.width, f.height] for f in frames], dtype=np.float32)
        if self.fixed_batch and len(frames) < self.fixed_batch:  # the last, short batch: padded, then dropped
            pad = self.fixed_batch - len(frames)
            images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), np.float32)])
            sizes = np.concatenate([sizes, np.ones((pad, 2), np.float32)])
        labels, xyxy, scores = self.session.run(None, {"images": images, "orig_target_sizes": sizes})
        return detection_rows(batch, labels, xyxy, scores)
