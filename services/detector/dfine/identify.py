"""What a D-FINE checkpoint is — size (N/S/M/L/X) and classes (COCO 80, Objects365 366, CrowdHuman 1, or a
fine-tune's own) — read from its tensors' shapes and motpipe's metadata, without torch (the API uses it); an
ONNX export (`.onnx`) from the metadata `motpipe export dfine` wrote into it.

The sizes differ in the encoder's first input projection (in and out channels) and the decoder's layer
count (measured on our models, which carry the official names): N 512->128 x3, S 256->256 x3, M 384->256 x4,
L 512->256 x6, X 512->384 x6. The class count is the rows of the decoder's score head.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from shared.checkpoint_header import read_header, state_shapes
from shared.errors import InputError

from .configs import NUM_CLASSES

SIGNATURES = {(512, 128, 3): "n", (256, 256, 3): "s", (384, 256, 4): "m", (512, 256, 6): "l", (512, 384, 6): "x"}
DATASET_NAMES = {"coco": "COCO", "obj365": "Objects365", "crowdhuman": "CrowdHuman"}


@dataclass(frozen=True)
class DFineIdentity:
    size: str
    num_classes: int
    dataset: str | None  # the dataset whose class count it has (None: a fine-tune's own classes)
    classes: tuple[str, ...] = ()  # a motpipe fine-tune's class names

    def __str__(self) -> str:
        if self.classes:
            what = f"its own classes {', '.join(self.classes[:5])}{', ...' if len(self.classes) > 5 else ''}"
        else:
            what = DATASET_NAMES.get(self.dataset, "a fine-tune's own classes")
        return f"D-FINE {self.size.upper()} with {self.num_classes} classes ({what})"


def identify(path: str | os.PathLike) -> DFineIdentity:
    if str(path).endswith(".onnx"):  # an export: the file says what it is
        from .onnx_export import read_onnx_meta

        meta = read_onnx_meta(path)
        return DFineIdentity(meta["size"], meta["num_classes"], meta.get("dataset"), tuple(meta.get("classes") or ()))
    tree = read_header(path)
    shapes = state_shapes(tree, ("ema", "module"), ("model",))
    if shapes is None:
        raise InputError("expected checkpoint['ema']['module'] or checkpoint['model'] (D-FINE weights)",
                         source=str(path))  # fmt: skip
    meta = tree.get("motpipe") if isinstance(tree, dict) and isinstance(tree.get("motpipe"), dict) else {}
    projection = shapes.get("encoder.input_proj.0.conv.weight")
    score = shapes.get("decoder.dec_score_head.0.weight")
    layers = len({k.split(".")[2] for k in shapes if k.startswith("decoder.dec_score_head.")})
    size = SIGNATURES.get((projection[1], projection[0], layers)) if projection and len(projection) == 4 else None
    if size is None or score is None:
        raise InputError("not a D-FINE checkpoint: its encoder and decoder match none of the sizes N/S/M/L/X",
                         source=str(path))  # fmt: skip
    num_classes = score[0]
    dataset = next((name for name, count in NUM_CLASSES.items() if count == num_classes), None)
    classes = tuple(str(c) for c in meta.get("classes") or ())
    if classes:  # a motpipe fine-tune: its own classes, whatever their count
        dataset = meta.get("dataset") if meta.get("dataset") in NUM_CLASSES else dataset
    return DFineIdentity(size, num_classes, dataset, classes)


def resolve(path: str | os.PathLike, size: str | None, dataset: str | None) -> tuple[str, str, DFineIdentity]:
    """(size, dataset) to build the model with: the checkpoint's own, or an InputError in one line when a given
    `size`/`dataset` contradicts it."""
    found = identify(path)
    if size is not None and size.lower() != found.size:
        raise InputError(f"this checkpoint is {found}; size {size} does not match", source=str(path), field="size")
    if dataset is not None and found.dataset is not None and not found.classes and dataset != found.dataset:
        raise InputError(f"this checkpoint is {found}; dataset {dataset} does not match", source=str(path),
                         field="dataset")  # fmt: skip
    return found.size, dataset or found.dataset or "coco", found
