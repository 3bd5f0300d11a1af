"""Conversions between the formats the group's tools exchange.

Label Studio <-> MOT (with seqinfo.ini and the class map), det_db <-> MOT detections,
MOT -> TrackEval's folder layout, COCO-style detections -> det_db.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from shared.atomic import atomic_open, atomic_write_text
from shared.errors import InputError
from shared.formats.det_db import det_db_key, parse_key
from shared.formats.labelstudio import DEFAULT_CLASSES, LabelStudioGT
from shared.formats.mot_txt import MotTable, rows_by_frame, write_mot
from shared.formats.text_io import read_json


def seqinfo(name: str, frames: int, size: tuple[int, int] | None, fps: float = 25.0, ext: str = ".jpg") -> str:
    width, height = size or (0, 0)
    return (
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={fps:g}\nseqLength={frames}\n"
        f"imWidth={width}\nimHeight={height}\nimExt={ext}\n"
    )


def labelstudio_to_mot(
    gt: LabelStudioGT,
    out_dir: str | os.PathLike,
    sequence: str,
    frame_range: tuple[int, int] | None = None,
    frame_size: tuple[int, int] | None = None,
) -> Path:
    """`<out>/<sequence>/gt/gt.txt` (+ seqinfo.ini, classes.json); frames outside `frame_range` dropped."""
    table = gt.table
    if frame_range is not None:
        first, last = frame_range
        table = table.select((table.frame >= first) & (table.frame <= last))
    folder = Path(out_dir) / sequence
    write_mot(folder / "gt" / "gt.txt", table, columns=9)
    frames = frame_range[1] if frame_range else int(table.frame.max(initial=0))
    atomic_write_text(folder / "seqinfo.ini", seqinfo(sequence, frames, frame_size))
    atomic_write_text(folder / "gt" / "classes.json", json.dumps(gt.classes or DEFAULT_CLASSES, indent=1))
    return folder / "gt" / "gt.txt"


def labelstudio_results(
    table: MotTable, frame_size: tuple[int, int], classes: dict[str, int] | None = None, scores: bool = True
) -> dict[int, list[dict]]:
    """Each frame's rows as Label Studio rectangles (percent of `frame_size`, region ids `track_<id>`, the
    row's score with `scores`), by frame."""
    names = {cls: name for name, cls in (classes or DEFAULT_CLASSES).items()}
    width, height = frame_size
    out = {}
    for frame, rows in rows_by_frame(table).items():
        out[frame] = []
        for i in rows:
            x, y, w, h = table.boxes[i]
            label = names.get(int(table.cls[i]), names.get(1, "player"))
            out[frame].append({
                "id": f"track_{int(table.id[i])}", "type": "rectanglelabels", "from_name": "label",
                "to_name": "image", "original_width": width, "original_height": height,
                "value": {"x": 100 * x / width, "y": 100 * y / height, "width": 100 * w / width,
                          "height": 100 * h / height, "rotation": 0, "rectanglelabels": [label]},
                **({"score": float(table.conf[i])} if scores else {}),
            })  # fmt: skip
    return out


def mot_to_labelstudio(
    table: MotTable,
    path: str | os.PathLike,
    frame_size: tuple[int, int],
    image_pattern: str = "img1/{frame:06d}.jpg",
    classes: dict[str, int] | None = None,
    as_predictions: bool = True,
    model_version: str = "motpipe",
) -> None:
    """Label Studio image tasks, one per frame, region ids `track_<id>`.

    As pre-annotations (`predictions`) tracker output can be corrected in Label Studio and
    exported back as ground truth; `as_predictions=False` writes `annotations` instead.
    """
    tasks = []
    for frame, results in labelstudio_results(table, frame_size, classes, as_predictions).items():
        key = "predictions" if as_predictions else "annotations"
        entry = {"result": results, **({"model_version": model_version} if as_predictions else {})}
        tasks.append({"data": {"image": image_pattern.format(frame=frame)}, key: [entry]})
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(tasks, handle)


def det_db_to_mot(
    det_db: dict[str, np.ndarray], sequence: str, classes: dict[str, np.ndarray] | None = None
) -> MotTable:
    """Detections of one sequence as MOT rows (id = index within the frame, conf = score, class from the
    classes sidecar when given, else -1)."""
    rows = []
    for key, dets in det_db.items():
        parsed = parse_key(key)
        if parsed is None or parsed[0] != sequence or not len(dets):
            continue
        n = len(dets)
        label = classes[key] if classes is not None else np.full(n, -1)
        rows.append(np.column_stack([np.full(n, parsed[1]), np.arange(n), dets[:, :5], label, np.full((n, 2), -1)]))
    matrix = np.concatenate(rows) if rows else np.zeros((0, 10))
    return MotTable.from_matrix(matrix[np.lexsort((matrix[:, 1], matrix[:, 0]))])


def mot_to_det_db(table: MotTable, sequence: str, num_frames: int | None = None) -> dict[str, np.ndarray]:
    """A det_db with a key for every frame 1..N (empty lists where nothing was detected)."""
    last = num_frames or int(table.frame.max(initial=0))
    db = {}
    for frame in range(1, last + 1):
        rows = table.frame == frame
        db[det_db_key(sequence, frame)] = np.column_stack([table.boxes[rows], table.conf[rows]])
    return db


def coco_to_det_db(
    path: str | os.PathLike, sequence: str, num_frames: int | None = None, score_threshold: float = 0.0
) -> dict[str, np.ndarray]:
    """COCO-style detections (`bbox` x,y,w,h, `score`, `category_id`), either a list whose items carry
    `frame` or `image_id` (1-based), or an object keyed by frame number."""
    data = read_json(path)
    items: list[tuple[int, dict]] = []
    if isinstance(data, dict):
        for frame, dets in data.items():
            if not str(frame).isdigit() or not isinstance(dets, list):
                raise InputError("expected frame numbers as keys and lists of detections", source=str(path),
                                 where=f"key {frame!r}")  # fmt: skip
            items += [(int(frame), d) for d in dets]
    elif isinstance(data, list):
        for i, det in enumerate(data):
            frame = det.get("frame", det.get("image_id")) if isinstance(det, dict) else None
            if not isinstance(frame, int):
                raise InputError(
                    "detection without an integer 'frame' or 'image_id'", source=str(path), where=f"item {i}"
                )
            items.append((frame, det))
    else:
        raise InputError("expected a list of detections or an object keyed by frame", source=str(path))
    rows = []
    for frame, det in items:
        bbox, score = det.get("bbox"), det.get("score", 1.0)
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            raise InputError(
                f"bbox must be 4 numbers, got {bbox!r}", source=str(path), where=f"frame {frame}", field="bbox"
            )
        if score >= score_threshold:
            rows.append((frame, 0, *bbox, score, det.get("category_id", -1), -1, -1))
    table = MotTable.from_matrix(np.asarray(rows, float).reshape(-1, 10))
    return mot_to_det_db(table, sequence, num_frames or max((f for f, _ in items), default=0))


def mot_to_trackeval(
    gt: MotTable,
    tracks: MotTable,
    out_dir: str | os.PathLike,
    sequence: str,
    tracker: str = "motpipe",
    benchmark: str = "MOTPIPE",
    num_frames: int | None = None,
    frame_size: tuple[int, int] | None = None,
) -> Path:
    """TrackEval's MOT Challenge layout: gt/, trackers/ and seqmaps under `out_dir`."""
    root = Path(out_dir)
    split = f"{benchmark}-train"
    frames = num_frames or int(max(gt.frame.max(initial=0), tracks.frame.max(initial=0)))
    seq_dir = root / "gt" / "mot_challenge" / split / sequence
    write_mot(seq_dir / "gt" / "gt.txt", gt, columns=9)
    atomic_write_text(seq_dir / "seqinfo.ini", seqinfo(sequence, frames, frame_size))
    atomic_write_text(root / "gt" / "mot_challenge" / "seqmaps" / f"{split}.txt", f"name\n{sequence}\n")
    write_mot(root / "trackers" / "mot_challenge" / split / tracker / "data" / f"{sequence}.txt", tracks)
    return root
