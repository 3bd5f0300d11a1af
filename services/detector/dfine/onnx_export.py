"""`motpipe export dfine`: D-FINE as one ONNX file with its post-processing, the official deploy graph's
interface — inputs `images` (N, 3, S, S) in 0..1 and `orig_target_sizes` (N, 2) as w, h; outputs `labels`,
`boxes` (x1, y1, x2, y2 in the original pixels) and `scores`, the top 300 — at opset 17, with what the file
is (size, classes, input size, batch) in its metadata so `detect --weights OUT.onnx` needs no --size/--dataset.

The graph is traced with torch's TorchScript exporter: it is static once the weights are fixed (the decoder's
box-distribution bounds become constants), which that exporter handles without onnxscript. A dynamic batch is
traced with two images, so the decoder's per-image anchor copy is part of the graph."""

from __future__ import annotations

import io
import json
import os
import warnings

import torch
from torch import nn

from shared.atomic import atomic_open
from shared.errors import InputError

from .identify import DFineIdentity
from .model import DFINE, postprocess

META_KEY = "motpipe.dfine"  # the metadata entry `identify` and the ONNX detector read
OPSET = 17
INPUTS, OUTPUTS = ["images", "orig_target_sizes"], ["labels", "boxes", "scores"]


class DeployGraph(nn.Module):
    """Model and post-processing as one module: what the exported file computes."""

    def __init__(self, model: DFINE):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, orig_target_sizes: torch.Tensor):
        logits, boxes = self.model(images)
        return postprocess(logits, boxes, orig_target_sizes)


def export_dfine(
    model: DFINE, identity: DFineIdentity, dataset: str, out: str | os.PathLike, batch: int | None, fp16: bool
) -> dict:
    """Write `model` (deployed, on the CPU) to `out` atomically; `batch` None = any batch size. `fp16` asks the
    TensorRT provider to build its engine in FP16 (the ONNX file stays FP32, so every other provider runs it
    as exported). Returns the metadata written."""
    import onnx

    size = int(getattr(model, "input_size", 640))
    example = torch.rand(batch or 2, 3, size, size)
    sizes = torch.tensor([[1280.0, 720.0]]).repeat(example.shape[0], 1)
    dynamic = (
        None
        if batch
        else {"images": {0: "batch"}, "orig_target_sizes": {0: "batch"}} | {name: {0: "batch"} for name in OUTPUTS}
    )
    buffer = io.BytesIO()
    # the tracer's warnings (constants from .item(), the exporter's deprecation) concern choices made above
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(DeployGraph(model.eval()), (example, sizes), buffer, input_names=INPUTS,
                          output_names=OUTPUTS, opset_version=OPSET, dynamic_axes=dynamic, dynamo=False)  # fmt: skip
    graph = onnx.load_from_string(buffer.getvalue())
    meta = {"size": identity.size, "dataset": dataset, "num_classes": identity.num_classes,
            "classes": list(getattr(model, "class_names", []) or identity.classes), "input_size": size,
            "batch": batch or "dynamic", "fp16": fp16, "opset": OPSET}  # fmt: skip
    entry = graph.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.checker.check_model(graph)
    with atomic_open(out, "wb") as handle:
        handle.write(graph.SerializeToString())
    return meta


def read_onnx_meta(path: str | os.PathLike) -> dict:
    """The metadata `export_dfine` wrote; an InputError naming the file when it is not such an export."""
    try:
        import onnx
    except ImportError:
        raise InputError("reading an ONNX file needs the onnx package (pip install onnx)",
                         source=str(path)) from None  # fmt: skip
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise InputError(f"not a readable ONNX file ({type(exc).__name__})", source=str(path)) from None
    found = {entry.key: entry.value for entry in graph.metadata_props}
    if META_KEY not in found:
        raise InputError("an ONNX file without motpipe's D-FINE metadata: export it with `motpipe export dfine`",
                         source=str(path))  # fmt: skip
    return json.loads(found[META_KEY])
