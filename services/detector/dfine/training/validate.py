"""Validation after each epoch: COCO mAP, mAP50 and AR@100, overall and per class, computed by
pycocotools (the reference COCO evaluation, not ours), plus recall at IoU 0.5 and 0.3 per class (the ball's
is what the group watches): the share of ground-truth boxes that a detection of the same class with score
at least `score_threshold` covers at that IoU.

The model runs as it will in use: eval mode (the EMA weights when given), frames resized to the training
size, top-300 (query, class) pairs.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from ..model import postprocess
from .data import Sample, clip_boxes
from .forward import train_forward
from .transforms import load_sample, pipeline


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-12)


@torch.no_grad()
def predict(model, samples: list[Sample], size: int, device, dtype, batch: int = 4):
    """Per sample: (boxes xyxy in original pixels, scores, labels) of the top-300 pairs, and the image's
    (width, height)."""
    from PIL import Image

    was_training = model.training
    model.eval()
    transform = pipeline(None, 0, size)
    out = []
    try:
        for start in range(0, len(samples), batch):
            chunk = samples[start : start + batch]
            images = torch.stack([load_sample(s, transform)[0] for s in chunk]).to(device, dtype)
            outputs = train_forward(model, images)
            sizes = []
            for s in chunk:
                with Image.open(s.image) as image:  # the header only
                    sizes.append(image.size)
            labels, boxes, scores = postprocess(
                outputs["pred_logits"].float(),
                outputs["pred_boxes"].float(),
                torch.tensor(sizes, dtype=torch.float32, device=device),
            )
            for i in range(len(chunk)):
                out.append((boxes[i].cpu().numpy(), scores[i].cpu().numpy(), labels[i].cpu().numpy(), sizes[i]))
    finally:
        model.train(was_training)
    return out


def coco_metrics(samples: list[Sample], predictions, class_names: list[str], score_threshold: float = 0.3) -> dict:
    """{"mAP", "mAP50", "AR", "per_class": {name: {...}}} with pycocotools, plus recall@0.5/0.3 per class."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    num_classes = len(class_names)
    images, annotations, results = [], [], []
    gt_by_class: dict[int, list[tuple[int, np.ndarray]]] = {}
    for image_id, (sample, (boxes, scores, labels, (w, h))) in enumerate(zip(samples, predictions, strict=True), 1):
        images.append({"id": image_id, "width": w, "height": h, "file_name": str(sample.image)})
        gt_boxes, gt_labels = clip_boxes(sample, w, h)
        for box, label in zip(gt_boxes, gt_labels, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
            gt_by_class.setdefault(int(label), []).append((image_id, box))
        for box, score, label in zip(boxes, scores, labels, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(label),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    gt = COCO()
    gt.dataset = {
        "info": {},  # pycocotools >= 2.0.9 copies it in loadRes
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for i, n in enumerate(class_names)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        evaluator = COCOeval(gt, dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # [iou thresholds, recall points, classes, areas, max dets]
    recall = evaluator.eval["recall"]  # [iou thresholds, classes, areas, max dets]

    def mean(x: np.ndarray) -> float:
        x = x[x > -1]
        return float(x.mean()) if x.size else float("nan")

    per_class = {}
    for k, name in enumerate(class_names):
        entry = {
            "mAP": mean(precision[:, :, k, 0, -1]),
            "mAP50": mean(precision[0, :, k, 0, -1]),
            "AR": mean(recall[:, k, 0, -1]),
            "gt_boxes": len(gt_by_class.get(k, [])),
        }
        for t in (0.5, 0.3):
            entry[f"recall@{t}"] = _recall(gt_by_class.get(k, []), predictions, k, t, score_threshold)
        per_class[name] = entry
    stats = evaluator.stats
    return {
        "mAP": float(stats[0]),
        "mAP50": float(stats[1]),
        "AR": float(stats[8]),
        "per_class": per_class,
        "classes": num_classes,
    }


def _recall(gts: list[tuple[int, np.ndarray]], predictions, label: int, iou: float, score_threshold: float) -> float:
    if not gts:
        return float("nan")
    hits = 0
    for image_id, box in gts:
        boxes, scores, labels, _ = predictions[image_id - 1]
        keep = (labels == label) & (scores >= score_threshold)
        if keep.any() and _iou(box[None], boxes[keep]).max() >= iou:
            hits += 1
    return hits / len(gts)
