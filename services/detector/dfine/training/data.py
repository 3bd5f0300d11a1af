"""Training samples for D-FINE from the group's files or COCO json.

- Frames + ground truth: a video or image folder with MOT `gt.txt` or a Label Studio export (image or
  video tasks). Ground-truth class k (1 player, 2 ball) becomes model class `class_of[k]`. Only frames that
  carry ground truth are samples (sparse annotation is normal); frames listed as annotated-empty are
  samples without boxes. Videos are decoded once into PNGs under a cache folder (training reads frames in
  random order).
- COCO json + image folder: as the official CocoDetection for custom data — `iscrowd` boxes dropped,
  category id = model class (or remapped from the 80 COCO ids with `remap_mscoco`).

Boxes are kept in pixels (x1, y1, x2, y2); when a sample is loaded they are clipped to the image and empty
ones dropped, as the official loader does. A box wholly outside its image is refused with its line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.errors import InputError
from shared.formats.mot_txt import MotTable
from shared.frames import extract_video_frames, open_frames

# the official `mscoco_category2label`: the 80 COCO category ids in order -> 0..79
MSCOCO_IDS = [
    int(i)
    for i in (
        "1 2 3 4 5 6 7 8 9 10 11 13 14 15 16 17 18 19 20 21 22 23 24 25 27 28 31 "
        "32 33 34 35 36 37 38 39 40 41 42 43 44 46 47 48 49 50 51 52 53 54 55 56 57 58 59 "
        "60 61 62 63 64 65 67 70 72 73 74 75 76 77 78 79 80 81 82 84 85 86 87 88 89 90"
    ).split()
]


@dataclass
class Sample:
    image: Path
    boxes: np.ndarray  # (n, 4) x1, y1, x2, y2 in pixels
    labels: np.ndarray  # (n,) model class indices
    source: str  # where it came from, for messages ("clip.mp4 frame 12")
    sequence: str = ""
    frame: int = 0


@dataclass
class SampleSet:
    samples: list[Sample]
    notes: list[str] = field(default_factory=list)


def _frame_images(frames: Path, cache: Path) -> dict[int, Path]:
    """1-based frame number -> image file, numbered as `motpipe detect` numbers them; a video is decoded once
    into `cache` (this sequence's own folder)."""
    if frames.is_dir():
        return dict(enumerate(open_frames(frames).images, start=1))
    if not frames.is_file():
        raise InputError("frames not found (a video file or an image folder)", source=str(frames))
    return extract_video_frames(frames, cache)


def from_ground_truth(
    frames: Path,
    gt: MotTable,
    gt_source: str,
    class_of: dict[int, int],
    cache: Path,
    empty_frames: set[int] | None = None,
    name: str | None = None,
) -> SampleSet:
    """One sample per annotated frame (plus the frames marked annotated-empty) of sequence `name` (default:
    the frames' file or folder name)."""
    name = name or frames.stem
    images = _frame_images(frames, cache / name)
    unknown = sorted({int(c) for c in np.unique(gt.cls)} - set(class_of))
    if unknown:
        known = ", ".join(f"{k}" for k in sorted(class_of))
        raise InputError(
            f"ground truth has class(es) {unknown} that --classes does not map (mapped: {known})",
            source=gt_source,
            field="classes",
        )
    missing = sorted({int(f) for f in np.unique(gt.frame)} - set(images))
    if missing:
        raise InputError(
            f"ground truth names frame(s) {missing[:5]} but {frames} has {len(images)} frames", source=gt_source
        )
    samples = []
    wanted = sorted({int(f) for f in np.unique(gt.frame)} | set(empty_frames or ()))
    for number in wanted:
        if number not in images:
            raise InputError(
                f"annotated-empty frame {number} is not in {frames} ({len(images)} frames)", field="empty_frames"
            )
        rows = gt.frame == number
        xywh = gt.boxes[rows]
        boxes = np.column_stack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]]) if len(xywh) else np.zeros((0, 4))
        labels = np.array([class_of[int(c)] for c in gt.cls[rows]], dtype=np.int64)
        samples.append(
            Sample(images[number], boxes.astype(np.float64), labels, f"{gt_source} frame {number}", frames.stem, number)
        )
    notes = [f"{len(samples)} annotated frame(s) of {len(images)} in {frames.name}"]
    return SampleSet(samples, notes)


def from_coco(annotations: Path, images: Path, remap_mscoco: bool = False, num_classes: int | None = None) -> SampleSet:
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("annotations file not found", source=str(annotations)) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not JSON: {exc}", source=str(annotations)) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(
            "not a COCO detection file: expected an object with 'images' and 'annotations'", source=str(annotations)
        )
    remap = {cid: i for i, cid in enumerate(MSCOCO_IDS)}
    by_image: dict[int, list[dict]] = {}
    for i, ann in enumerate(data.get("annotations") or []):
        where = f"{annotations.name} annotations[{i}]"
        try:
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
            x, y, w, h = (float(v) for v in ann["bbox"])
            category = int(ann["category_id"])
        except (KeyError, TypeError, ValueError):
            raise InputError("annotation needs image_id, bbox [x, y, w, h] and category_id", source=where) from None
        if remap_mscoco and category not in remap:
            raise InputError(f"category_id {category} is not one of the 80 COCO ids (--remap-mscoco)", source=where)
        label = remap[category] if remap_mscoco else category
        if num_classes is not None and not 0 <= label < num_classes:
            raise InputError(
                f"category_id {category} is not a class of the model (0..{num_classes - 1}); "
                "use --remap-mscoco for COCO ids 1..90 or --classes",
                source=where,
            )
        ann["_label"] = label
    samples = []
    for i, img in enumerate(data["images"]):
        try:
            image_id, name = int(img["id"]), str(img["file_name"])
        except (KeyError, TypeError, ValueError):
            raise InputError("image needs id and file_name", source=f"{annotations.name} images[{i}]") from None
        path = images / name
        if not path.is_file():
            raise InputError(f"image {name} not found in {images}", source=f"{annotations.name} images[{i}]")
        kept = [a for a in by_image.get(image_id, []) if not a.get("iscrowd", 0)]
        xywh = np.array([[float(v) for v in a["bbox"]] for a in kept], dtype=np.float64).reshape(-1, 4)
        boxes = np.column_stack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]])
        labels = np.array([a["_label"] for a in kept], dtype=np.int64)
        samples.append(Sample(path, boxes, labels, f"{annotations.name} image {name}", "", image_id))
    if not samples:
        raise InputError("no images", source=str(annotations))
    return SampleSet(samples, [f"{len(samples)} image(s) from {annotations.name}"])


def clip_boxes(sample: Sample, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The official loader's clipping: boxes clipped to the image, empty ones dropped; a box wholly outside
    the image is an error (its annotation is wrong, not merely sloppy)."""
    b = sample.boxes
    outside = (b[:, 0] >= width) | (b[:, 1] >= height) | (b[:, 2] <= 0) | (b[:, 3] <= 0)
    if outside.any():
        first = b[np.flatnonzero(outside)[0]]
        raise InputError(
            f"box {first.round(1).tolist()} lies wholly outside the {width}x{height} image", source=sample.source
        )
    clipped = (
        np.column_stack(
            [b[:, 0].clip(0, width), b[:, 1].clip(0, height), b[:, 2].clip(0, width), b[:, 3].clip(0, height)]
        )
        if len(b)
        else b
    )
    keep = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped[keep], sample.labels[keep]


def check_boxes(samples: list[Sample]) -> None:
    """Refuse wholly-outside boxes before training starts (reads each image's size from its header)."""
    from PIL import Image

    for sample in samples:
        if len(sample.boxes):
            with Image.open(sample.image) as image:
                clip_boxes(sample, *image.size)


def split(samples: list[Sample], val: list[str]) -> tuple[list[Sample], list[Sample]]:
    """`--val` items: a sequence name (held out whole) or a frame range `A-B` / `SEQ:A-B`."""
    held = set()
    for item in val:
        seq, _, span = item.rpartition(":") if ":" in item else ("", "", item)
        if "-" not in span and not span.isdigit():
            seq, span = item, ""
        names = {s.sequence for s in samples}
        if seq and seq not in names:
            raise InputError(f"validation sequence {seq!r} is not in the data ({sorted(names)})", field="val")
        lo, hi = -1, 1 << 62
        if span:
            try:
                parts = [int(p) for p in span.split("-")]
            except ValueError:
                raise InputError(
                    f"not a frame range: {span!r} (e.g. 1500-1860 or SEQ:1500-1860)", field="val"
                ) from None
            lo, hi = parts[0], parts[-1]
        held.update(i for i, s in enumerate(samples) if (not seq or s.sequence == seq) and lo <= s.frame <= hi)
    train = [s for i, s in enumerate(samples) if i not in held]
    valid = [s for i, s in enumerate(samples) if i in held]
    if val and not valid:
        raise InputError(f"--val {' '.join(val)} selects no annotated frame", field="val")
    if val and not train:  # an overfitting check: validate on the training data (the job notes it)
        train = valid
    return train, valid
