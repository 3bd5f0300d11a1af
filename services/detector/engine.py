"""Run a detector over a frame source and produce a det_db (pure core: no FastAPI, no Celery)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from shared.atomic import atomic_open
from shared.formats.det_db import classes_path, det_db_key, write_det_db, write_det_db_classes
from shared.formats.mot_txt import MotTable, write_mot
from shared.frames import FrameSource, frame_workers, prepared_frames
from shared.schemas import DetDbInfo, DetectOptions

from .filters import DetectionFilter, FilterStats
from .registry import class_map, resolve_classes

ProgressFn = Callable[[int, int | None], None]


@dataclass
class Detections:
    per_frame: dict[int, np.ndarray]  # frame -> (n, 6) l,t,w,h,score,label
    info: DetDbInfo
    stats: FilterStats
    class_map: dict[int, int] | None = None  # detector label -> motpipe class (None: the classes are unknown)

    def det_db(self) -> dict[str, np.ndarray]:
        """Every frame gets a key (an empty list when nothing was found), as MOTRv2 expects."""
        return {det_db_key(self.info.sequence, f): d[:, :5] for f, d in sorted(self.per_frame.items())}

    def classes(self) -> dict[str, list[int]] | None:
        """The det_db's classes sidecar (motpipe class per line, -1 for a label outside the map), or None."""
        if self.class_map is None:
            return None
        return {det_db_key(self.info.sequence, f): [self.class_map.get(int(c), -1) for c in d[:, 5]]
                for f, d in sorted(self.per_frame.items())}  # fmt: skip

    def mot(self) -> MotTable:
        rows = [
            np.column_stack([np.full(len(d), f), np.arange(len(d)), d[:, :5], d[:, 5], np.full((len(d), 2), -1)])
            for f, d in sorted(self.per_frame.items())
        ]
        return MotTable.from_matrix(np.concatenate(rows) if rows else np.zeros((0, 10)))


def run_detection(
    source: FrameSource,
    detector,
    options: DetectOptions,
    progress: ProgressFn | None = None,
    frames: Iterator | None = None,
) -> Detections:
    """`frames`: the source's frames, already being read (`motpipe detect` starts them before the model
    loads); otherwise they are read here, in a thread that also runs the detector's `prepare_frame`."""
    own_names = getattr(detector, "class_names", None) or []
    keep = DetectionFilter(options, resolve_classes(options, own_names))
    if hasattr(detector, "prepare"):
        detector.prepare(source)
    notes: list[str] = []
    if frames is None and getattr(detector, "takes_device_frames", False):
        frames = device_frames(source, detector.device, notes)
    if frames is None:
        workers = frame_workers(getattr(detector, "device", "cpu"))
        frames = prepared_frames(source, getattr(detector, "prepare_frame", None), workers)
    per_frame: dict[int, np.ndarray] = {}
    for number, dets in detector.detect(frames):
        per_frame[number] = keep(dets)
        if progress:
            progress(number, source.count)
    info = DetDbInfo(
        detector=detector.name,
        weights=options.weights,
        sequence=options.sequence,
        frames=len(per_frame),
        frame_size=source.size,
        keys_with_detections=sum(1 for d in per_frame.values() if len(d)),
        detections=keep.stats.kept,
        options=options,
        notes=list(getattr(detector, "notes", [])) + notes,
    )
    if info.detections == 0 and keep.stats.raw > 0:
        info.notes.append(f"all {keep.stats.raw} detections were removed by the filters: {keep.stats.dropped}")
    mapping = class_map(options, own_names)
    if mapping is not None:
        info.notes.append("classes: " + ", ".join(f"{k} -> {v}" for k, v in sorted(mapping.items())))
    return Detections(per_frame, info, keep.stats, mapping)


def device_frames(source: FrameSource, device: str, notes: list[str]) -> Iterator | None:
    """The video decoded by the GPU when NVDEC is installed, allowed and gives the CPU decoder's frames
    (`shared/nvdec.py`); None otherwise, with a note saying why when NVDEC was tried."""
    from shared import nvdec

    if not nvdec.wanted():
        return None
    frames, note = nvdec.nvdec_frames(source, device)
    notes.append(note if frames is not None else f"frames decoded on the CPU: {note}")
    return frames


def write_detections(result: Detections, path: str | os.PathLike, fmt: str = "detdb") -> None:
    """Write as `detdb` (MOTRv2 JSON), `mot` (MOT txt with class column) or `json` (labels + stats)."""
    if fmt == "detdb":  # the official bytes; the classes beside them when known
        write_det_db(path, result.det_db())
        if (classes := result.classes()) is not None:
            write_det_db_classes(path, classes)
        else:  # a sidecar left from an earlier det_db at this path would give these lines wrong classes
            classes_path(path).unlink(missing_ok=True)
    elif fmt == "mot":
        write_mot(path, result.mot())
    elif fmt == "json":
        payload = {
            "info": result.info.model_dump(mode="json"),
            "filter_stats": asdict(result.stats),
            "frames": {
                str(f): [
                    {"box": [round(v, 2) for v in row[:4]], "score": round(row[4], 6), "label": int(row[5])}
                    for row in d.tolist()
                ]
                for f, d in sorted(result.per_frame.items())
            },
        }
        with atomic_open(path, "w", encoding="utf-8") as handle:
            json.dump(payload, handle)
    else:
        raise ValueError(f"unknown format {fmt!r}: detdb, mot or json")
