"""The official train-time pipeline for custom data (TRAINING_SPEC §6) on torchvision's transforms v2 —
the library the official code wraps: RandomPhotometricDistort (p 0.5), RandomZoomOut (fill 0),
RandomIoUCrop (p 0.8), SanitizeBoundingBoxes (min size 1), RandomHorizontalFlip, Resize, Sanitize again,
then uint8 -> float32 / 255 and boxes to normalised (cx, cy, w, h). Each augmentation can be switched off;
from `stop_epoch` on the first three are skipped, as the official policy does. Per-batch multi-scale
resizing (sizes other than N) happens in `collate`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from .data import Sample, clip_boxes


@dataclass
class AugmentConfig:
    photometric: bool = True
    zoom_out: bool = True
    iou_crop: bool = True
    flip: bool = True
    stop_epoch: int = 1 << 30  # from this epoch on: no photometric / zoom-out / IoU crop


class _Maybe(v2.Transform):
    """The official RandomIoUCrop wrapper: apply with probability p."""

    def __init__(self, transform: v2.Transform, p: float):
        super().__init__()
        self.inner, self.p = transform, p  # not `transform`: that name is v2.Transform's own method

    def forward(self, *inputs):
        if torch.rand(1) >= self.p:
            return inputs if len(inputs) > 1 else inputs[0]
        return self.inner(*inputs)


def pipeline(aug: AugmentConfig | None, epoch: int, size: int) -> v2.Compose:
    ops: list[v2.Transform] = []
    if aug is not None and epoch < aug.stop_epoch:
        if aug.photometric:
            ops.append(v2.RandomPhotometricDistort(p=0.5))
        if aug.zoom_out:
            ops.append(v2.RandomZoomOut(fill=0))
        if aug.iou_crop:
            ops.append(_Maybe(v2.RandomIoUCrop(), 0.8))
        ops.append(v2.SanitizeBoundingBoxes(min_size=1))
    if aug is not None and aug.flip:
        ops.append(v2.RandomHorizontalFlip())
    ops += [v2.Resize([size, size]), v2.SanitizeBoundingBoxes(min_size=1)]
    return v2.Compose(ops)


def load_sample(sample: Sample, transform: v2.Compose) -> tuple[torch.Tensor, dict]:
    """(3, S, S) float32 in 0..1, target {boxes (n, 4) normalised cx cy w h float32, labels (n,)}."""
    with Image.open(sample.image) as opened:
        image = opened.convert("RGB")
    boxes, labels = clip_boxes(sample, *image.size)
    target = {
        "boxes": tv_tensors.BoundingBoxes(
            torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4),
            format="XYXY",
            canvas_size=(image.height, image.width),
        ),
        "labels": torch.as_tensor(labels, dtype=torch.int64),
    }
    image, target = transform(image, target)
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    h, w = pixels.shape[1:]
    # box arithmetic in float64, rounded to float32 once at the end (the official targets' dtype)
    b = target["boxes"].as_subclass(torch.Tensor).double()
    cxcywh = torch.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], -1)
    cxcywh = cxcywh / torch.tensor([w, h, w, h], dtype=torch.float64)
    return pixels.float().div(255), {"boxes": cxcywh.float(), "labels": target["labels"]}


def multiscale_sizes(base: int, repeat: int = 3) -> list[int]:
    """The official collate's sizes: 0.75x..base in steps of 32, base x `repeat`, 1.25x..base."""
    steps = int((base - base * 0.75) / 32)
    low = [int(base * 0.75 / 32) * 32 + i * 32 for i in range(steps)]
    high = [int(base * 1.25 / 32) * 32 - i * 32 for i in range(steps)]
    return low + [base] * repeat + high


def collate(items: list[tuple[torch.Tensor, dict]], multiscale: list[int] | None, rng: random.Random):
    images = torch.stack([image for image, _ in items])
    if multiscale:
        size = rng.choice(multiscale)
        images = F.interpolate(images, size=size)  # nearest, as officially; boxes are normalised
    return images, [target for _, target in items]


class EpochSamples(torch.utils.data.Dataset):
    """One epoch's samples in their training order, loaded through the pipeline. Each item re-seeds torch's
    generator from (epoch seed, position) before its augmentation, so what a sample looks like does not depend
    on which process loads it: any number of loader workers trains the same weights (and a resumed epoch
    repeats the uninterrupted one)."""

    def __init__(self, samples: list[Sample], order: list[int], transform: v2.Compose, seed: int):
        self.samples, self.order, self.transform, self.seed = samples, order, transform, seed

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, dict]:
        with torch.random.fork_rng(devices=[]):  # the training process's own draws (denoising) stay untouched
            torch.manual_seed(self.seed * 100_003 + position)
            return load_sample(self.samples[self.order[position]], self.transform)


def batches(epoch_samples: EpochSamples, batch_size: int, workers: int):
    """Lists of loaded (image, target) per batch, `workers` processes ahead of the training step."""
    return torch.utils.data.DataLoader(
        epoch_samples,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=2 if workers else None,
        generator=torch.Generator().manual_seed(epoch_samples.seed),  # not the global one: see __getitem__
    )
