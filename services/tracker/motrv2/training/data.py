"""Training samples as the official dataset builds them: sequences of frames with MOT ground truth and det_db
proposals -> clips of `sampler_length` frames.

Layout read by `load_dataset_root`: `<root>/<seq>/gt/gt.txt` (`frame,id,x,y,w,h,mark,label,vis`, pixels)
and the frames as `<root>/<seq>/img1/<frame:06d>.jpg|png` or one video file in `<root>/<seq>/`; the det_db
is keyed `<seq>/img1/<frame:06d>` (the group's fork) or `<split>/<seq>/img1/<frame:08d>.txt` (official).

Ground truth (official `datasets/dance.py`): rows with mark 0 are skipped; with one class the official
label filter drops labels 3, 4, 5, 6, 9, 10, 11 and every kept object is class 0; with more classes the
class is `label - 1` (1 player, 2 ball). Object ids become `id + 100000 * sequence index`.

Clips: one per (sequence, start) for every start from the first ground-truth frame whose clip of
`sampler_length` frames fits (the official loop leaves out the last start); frames `start + rate * i`
with `rate` drawn from 1..`sample_interval + 1` (Python's inclusive `randint`, as the official code), each
clamped to the last ground-truth frame. A frame without det_db entry has no proposals (the job runner's
doctor gate refuses such data unless accepted).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from shared.errors import InputError
from shared.formats.mot_txt import MotTable, read_mot
from shared.frames import IMAGE_SUFFIXES, extract_video_frames

from ..runtime import to_tensor
from .clip import Clip
from .criterion import FrameTargets
from .transforms import AugmentConfig, augment

OFFICIAL_SKIPPED_LABELS = (3, 4, 5, 6, 9, 10, 11)
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}
_DET_DB_KEY = re.compile(r"^(?:.*/)?(?P<sequence>[^/]+)/img1/(?P<frame>\d+)(?:\.txt)?$")


@dataclass(frozen=True)
class DataConfig:
    sampler_length: int = 5
    sample_interval: int = 10
    num_classes: int = 1
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)  # None: --no-augment


@dataclass
class SequenceData:
    """One training sequence: frame images by number, ground truth rows, det_db rows by frame."""

    name: str
    images: dict[int, Path]
    gt: MotTable
    proposals: dict[int, np.ndarray]  # frame -> (n, 5) l, t, w, h, score in pixels
    source: str = ""

    @property
    def gt_frames(self) -> tuple[int, int]:
        return int(self.gt.frame.min()), int(self.gt.frame.max())


def index_det_db(det_db: Mapping[str, np.ndarray]) -> dict[str, dict[int, np.ndarray]]:
    """`{sequence: {frame: rows}}` from either key style; keys of neither style are ignored here (the doctor
    reports them)."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for key, rows in det_db.items():
        match = _DET_DB_KEY.match(key)
        if match:
            out.setdefault(match["sequence"], {})[int(match["frame"])] = np.asarray(rows, dtype=np.float64)
    return out


def select_gt(gt: MotTable, num_classes: int, source: str) -> MotTable:
    """The rows the official dataset trains on, with `cls` set to the class index."""
    keep = gt.conf != 0
    if num_classes == 1:
        keep &= ~np.isin(gt.cls, OFFICIAL_SKIPPED_LABELS)
        picked = gt.select(keep)
        return MotTable(picked.frame, picked.id, picked.boxes, picked.conf, np.zeros_like(picked.cls), picked.vis)
    picked = gt.select(keep)
    bad = np.flatnonzero((picked.cls < 1) | (picked.cls > num_classes))
    if bad.size:
        raise InputError(
            f"label {int(picked.cls[bad[0]])} in frame {int(picked.frame[bad[0]])} is not a class of a "
            f"{num_classes}-class model (labels 1..{num_classes}: 1 player, 2 ball)",
            source=source,
            field="label",
        )
    return MotTable(picked.frame, picked.id, picked.boxes, picked.conf, picked.cls - 1, picked.vis)


def _sequence_images(folder: Path, cache: Path | None) -> dict[int, Path]:
    images = folder / "img1"
    if images.is_dir():
        found = {}
        for path in images.iterdir():
            if path.suffix.lower() in IMAGE_SUFFIXES and path.stem.isdigit():
                found[int(path.stem)] = path
        if found:
            return found
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise InputError("no frames: expected img1/<frame:06d>.jpg|png or one video file", source=str(folder))
    if len(videos) > 1:
        raise InputError(f"several videos {[v.name for v in videos]}; keep one per sequence", source=str(folder))
    if cache is None:
        raise InputError("a video sequence needs a frame cache folder", source=str(videos[0]))
    return extract_video_frames(videos[0], cache / folder.name)


def load_dataset_root(
    root: str | Path, det_db: Mapping[str, np.ndarray], cache: Path | None = None, sequences: list[str] | None = None
) -> list[SequenceData]:
    """Every `<root>/<seq>/gt/gt.txt` sequence (or the named ones) with its frames and proposals."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("dataset root not found", source=str(root))
    folders = sorted(p.parent.parent for p in root.glob("*/gt/gt.txt"))
    if sequences:
        missing = [s for s in sequences if not (root / s / "gt" / "gt.txt").is_file()]
        if missing:
            raise InputError(f"no <seq>/gt/gt.txt for {missing}", source=str(root))
        folders = [root / s for s in sequences]
    if not folders:
        raise InputError("no sequence found: expected <root>/<seq>/gt/gt.txt", source=str(root))
    by_sequence = index_det_db(det_db)
    out = []
    for folder in folders:
        gt_path = folder / "gt" / "gt.txt"
        gt = read_mot(gt_path)
        if len(gt) == 0:
            raise InputError("ground truth is empty", source=str(gt_path))
        out.append(
            SequenceData(
                folder.name, _sequence_images(folder, cache), gt, by_sequence.get(folder.name, {}), str(gt_path)
            )
        )
    return out


def check_frames(sequences: list[SequenceData]) -> None:
    """Every ground-truth frame must have its image: name the first missing one."""
    for seq in sequences:
        first, last = seq.gt_frames
        missing = [f for f in range(first, last + 1) if f not in seq.images]
        if missing:
            raise InputError(
                f"{len(missing)} frame(s) between {first} and {last} have no image, first {missing[0]:06d}",
                source=f"{seq.name}/img1",
            )


class ClipDataset:
    """Indexable clips; `sample(i, rng, np_rng)` draws the frame step and augmentation of clip i."""

    def __init__(self, sequences: list[SequenceData], cfg: DataConfig):
        self.cfg = cfg
        self.sequences = sequences
        check_frames(sequences)
        self._gt = [self._gt_by_frame(i, s) for i, s in enumerate(sequences)]
        self.indices: list[tuple[int, int]] = []
        for i, seq in enumerate(sequences):
            first, last = seq.gt_frames
            self.indices += [(i, start) for start in range(first, last - cfg.sampler_length + 2)]
        if not self.indices:
            raise InputError(
                f"no clip of {cfg.sampler_length} frames fits in any sequence (shortest has "
                f"{min(s.gt_frames[1] - s.gt_frames[0] + 1 for s in sequences)} frames)",
                field="sampler_length",
            )

    def _gt_by_frame(self, index: int, seq: SequenceData) -> dict[int, np.ndarray]:
        gt = select_gt(seq.gt, self.cfg.num_classes, seq.source)
        rows = np.column_stack([gt.boxes, gt.id + 100000 * index, gt.cls]).astype(np.float64)
        return {int(f): rows[gt.frame == f] for f in np.unique(gt.frame)}

    def __len__(self) -> int:
        return len(self.indices)

    def frame_numbers(self, index: int, rng: random.Random) -> list[int]:
        seq_index, start = self.indices[index]
        last = self.sequences[seq_index].gt_frames[1]
        rate = rng.randint(1, self.cfg.sample_interval + 1)
        return [min(start + rate * i, last) for i in range(self.cfg.sampler_length)]

    def sample(self, index: int, rng: random.Random, np_rng: np.random.Generator) -> Clip:
        seq_index, _ = self.indices[index]
        seq = self.sequences[seq_index]
        numbers = self.frame_numbers(index, rng)
        frames, boxes, counts, extras = [], [], [], []
        for number in numbers:
            image = cv2.imread(str(seq.images[number]), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError("not a readable image", source=str(seq.images[number]))
            frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            gt = self._gt[seq_index].get(number, np.zeros((0, 6)))
            props = seq.proposals.get(number, np.zeros((0, 5))).reshape(-1, 5)
            xywh = np.concatenate([gt[:, :4], props[:, :4]])
            boxes.append(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1))
            counts.append(len(gt))
            extras.append((gt, props[:, 4]))
        keeps = [np.ones(len(b), dtype=bool) for b in boxes]
        if self.cfg.augment is not None:
            frames, boxes, keeps = augment(frames, boxes, self.cfg.augment, rng, np_rng)
        images, targets, proposals = [], [], []
        for frame, b, keep, n_gt, (gt, scores) in zip(frames, boxes, keeps, counts, extras, strict=True):
            h, w = frame.shape[:2]
            gt_keep, prop_keep = keep[:n_gt], keep[n_gt:]
            n_kept = int(gt_keep.sum())
            cxcywh = np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], 1) / np.array([w, h, w, h])
            cxcywh = torch.as_tensor(cxcywh, dtype=torch.float32).reshape(-1, 4)
            images.append(to_tensor(frame))
            targets.append(
                FrameTargets(
                    cxcywh[:n_kept],
                    torch.as_tensor(gt[gt_keep, 5], dtype=torch.long),
                    torch.as_tensor(gt[gt_keep, 4], dtype=torch.long),
                )
            )
            kept_scores = torch.as_tensor(scores[prop_keep], dtype=torch.float32)[:, None]
            proposals.append(torch.cat([cxcywh[n_kept:], kept_scores], 1))
        return Clip(images, targets, proposals, f"{seq.name} frames {numbers}")
