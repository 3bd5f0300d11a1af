"""Label Studio JSON export as ground truth.

Image tasks: `rectanglelabels` results in percent of `original_width/original_height`
(found on the result, sometimes inside `value`); the frame number is the last number in
the image file name. Video tasks: `videorectangle` results whose keyframe `sequence` is
expanded the way Label Studio's own converter does: between two keyframes the box is
linearly interpolated when the earlier keyframe is enabled; after the last enabled one
it is held until `framesCount`; a disabled keyframe ends the box until the next keyframe.
Region ids `track_<N>` (what our exports, our pre-annotations and the group's files use) keep N as
the track id; any other id (a region drawn in the editor) becomes a new id above every `track_<N>` of
the export and every id in `taken` (the ground truth it will join), 1, 2, ... when there are none, in
order of first appearance (the mapping is returned). An image task's frame is `data["frame"]` when it is
an integer (what `motpipe label push` writes), else the last number in the image file name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np

from shared.errors import InputError
from shared.formats.mot_txt import ID_LIMIT, MAX_FRAME, MotTable
from shared.formats.text_io import read_json

DEFAULT_CLASSES = {"player": 1, "ball": 2}
_NUMBER_RE = re.compile(r"(\d+)")
# A video region's keyframes expand into one row per frame: a 261-byte task claiming 3 M frames would make 3 M
# rows (GBs). A region is held or interpolated up to the video's frame count when it is known, and never
# expands into more rows than this.
MAX_REGION_ROWS = 100_000
MAX_VIDEO_ROWS = 5_000_000  # all video regions of one file together (~400 MB as a table)


@dataclass
class LabelStudioGT:
    table: MotTable
    track_ids: dict[str, int] = field(default_factory=dict)  # Label Studio region id -> track id
    classes: dict[str, int] = field(default_factory=dict)


_TRACK_RE = re.compile(r"^track_(\d+)$")


class _Builder:
    def __init__(self, source: str, classes: dict[str, int], next_free: int):
        self.source = source
        self.classes = classes
        self.next_free = next_free  # the id a region drawn in the editor gets next
        self.track_ids: dict[str, int] = {}
        self.rows: list[tuple[float, ...]] = []
        self.seen: set[tuple[int, int]] = set()

    def track_id(self, region_id: object, where: str) -> int:
        key = str(region_id)
        if key not in self.track_ids:
            if _TRACK_RE.match(key):
                number = int(key[6:])
            else:
                number, self.next_free = self.next_free, self.next_free + 1
            if number >= ID_LIMIT:
                raise InputError(f"track id {number} is not below {ID_LIMIT:,}", source=self.source, where=where,
                                 field="id")  # fmt: skip
            self.track_ids[key] = number
        return self.track_ids[key]

    def label(self, labels: object, where: str) -> int:
        if not isinstance(labels, list) or not labels:
            raise InputError("missing label list", source=self.source, where=where, field="labels")
        name = str(labels[0])
        for known, cls in self.classes.items():
            if known.lower() == name.lower():
                return cls
        raise InputError(
            f"unknown label {name!r}; known: {sorted(self.classes)} (pass a class map)",
            source=self.source,
            where=where,
            field="labels",
        )

    def add(self, frame: int, track: int, cls: int, box_pct: dict, size: tuple[float, float], where: str) -> None:
        _check_frame(frame, self.source, where)
        values = []
        for name in ("x", "y", "width", "height"):
            value = box_pct.get(name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
                raise InputError(
                    f"missing or not a finite number: {value!r}", source=self.source, where=where, field=name
                )
            values.append(float(value))
        if values[2] < 0 or values[3] < 0:
            raise InputError("negative box size", source=self.source, where=where, field="width/height")
        if (frame, track) in self.seen:
            raise InputError(
                f"track {track} appears twice in frame {frame}", source=self.source, where=where, field="id"
            )
        self.seen.add((frame, track))
        width, height = size
        # percent / 100 * size: the group's loader's order of operations, so pixels agree to the bit
        x, y, w, h = (v / 100 * s for v, s in zip(values, (width, height, width, height), strict=True))
        self.rows.append((frame, track, x, y, w, h, 1.0, cls, 1.0, -1.0))

    def result(self) -> LabelStudioGT:
        matrix = np.asarray(self.rows, dtype=np.float64).reshape(-1, 10)
        order = np.lexsort((matrix[:, 1], matrix[:, 0]))
        return LabelStudioGT(MotTable.from_matrix(matrix[order]), self.track_ids, dict(self.classes))


def _check_frame(frame: object, source: str, where: str, field: str = "frame") -> None:
    if isinstance(frame, bool) or not isinstance(frame, int) or not 1 <= frame <= MAX_FRAME:
        raise InputError(f"frame must be an integer from 1 to {MAX_FRAME:,}, got {frame!r}", source=source,
                         where=where, field=field)  # fmt: skip


def frame_from_name(name: str) -> int | None:
    """Last run of digits in the file's stem: `frame_000012.jpg` -> 12."""
    numbers = _NUMBER_RE.findall(PurePosixPath(name).stem)
    return int(numbers[-1]) if numbers else None


def _image_size(result: dict, where: str, source: str, frame_size: tuple[int, int] | None) -> tuple[float, float]:
    value = result.get("value") or {}
    for holder in (result, value):
        if "original_width" in holder and "original_height" in holder:
            size = []
            for name in ("original_width", "original_height"):
                number = holder[name]
                if isinstance(number, bool) or not isinstance(number, int | float) or not 0 < number < 1e6:
                    raise InputError(f"not an image size: {number!r}", source=source, where=where, field=name)
                size.append(float(number))
            return size[0], size[1]
    if frame_size is not None:
        return float(frame_size[0]), float(frame_size[1])
    raise InputError("no original_width/original_height; pass the frame size", source=source, where=where)


def _annotation_results(task: dict, where: str, source: str) -> list[dict]:
    annotations = task.get("annotations")
    if annotations is None:
        annotations = task.get("completions", [])
    if not isinstance(annotations, list):
        raise InputError("annotations must be a list", source=source, where=where, field="annotations")
    live = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not live:
        return []
    results = live[-1].get("result", [])  # the last submitted annotation wins, as in Label Studio exports
    if not isinstance(results, list):
        raise InputError("result must be a list", source=source, where=where, field="result")
    return results


def _expand_sequence(value: dict, where: str, source: str, num_frames: int | None) -> list[tuple[int, dict]]:
    """Keyframes -> one box per frame; `num_frames` (the video's, when known) bounds the last box's hold."""
    sequence = value.get("sequence")
    if not isinstance(sequence, list) or not all(isinstance(k, dict) for k in sequence):
        raise InputError("videorectangle without a keyframe sequence", source=source, where=where, field="sequence")
    for key in sequence:
        _check_frame(key.get("frame"), source, where, "sequence.frame")
    keys = sorted(sequence, key=lambda k: k["frame"])
    frames_count = value.get("framesCount") or 0
    if isinstance(frames_count, bool) or not isinstance(frames_count, int) or not 0 <= frames_count <= MAX_FRAME:
        raise InputError(f"framesCount must be an integer from 0 to {MAX_FRAME:,}, got {frames_count!r}",
                         source=source, where=where, field="framesCount")  # fmt: skip
    if num_frames is not None:
        frames_count = min(frames_count, num_frames)
    last = max(frames_count, keys[-1]["frame"]) if keys else 0
    if keys and last - keys[0]["frame"] + 1 > MAX_REGION_ROWS:
        raise InputError(f"the region spans frames {keys[0]['frame']}-{last}, more than {MAX_REGION_ROWS:,} rows "
                         "(framesCount or a keyframe beyond the video?)", source=source, where=where)  # fmt: skip
    boxes: dict[int, dict] = {}
    for i, key in enumerate(keys):
        frame = key["frame"]
        boxes[frame] = key
        if not key.get("enabled", True):
            continue
        end = keys[i + 1]["frame"] if i + 1 < len(keys) else max(frames_count, frame)
        nxt = keys[i + 1] if i + 1 < len(keys) else None
        for f in range(frame + 1, end):
            t = (f - frame) / (end - frame)
            boxes[f] = {
                name: key[name] + ((nxt[name] - key[name]) * t if nxt else 0.0)
                for name in ("x", "y", "width", "height")
            }
        if nxt is None and end > frame:
            boxes[end] = {name: key[name] for name in ("x", "y", "width", "height")}
    return sorted(boxes.items())


def parse_labelstudio(
    data: object,
    source: str = "Label Studio JSON",
    classes: dict[str, int] | None = None,
    frame_size: tuple[int, int] | None = None,
    num_frames: int | None = None,
    taken: set[int] | frozenset[int] = frozenset(),
) -> LabelStudioGT:
    """`num_frames`: the video's frame count when known (a video region is held no further); `taken`: ids a
    region drawn in the editor must not get (those of the ground truth the result joins)."""
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InputError("expected a list of tasks", source=source)
    region_ids = [
        str(r.get("id"))
        for task in data
        if isinstance(task, dict)
        for a in (task.get("annotations") or task.get("completions") or [])
        if isinstance(a, dict)
        for r in (a.get("result") or [])
        if isinstance(r, dict)
    ]
    kept = [int(rid[6:]) for rid in region_ids if _TRACK_RE.match(rid) and len(rid) < 30]
    builder = _Builder(source, dict(classes or DEFAULT_CLASSES), max([0, *kept, *taken]) + 1)
    image_frames: dict[int, int] = {}
    video_rows = 0
    for t, task in enumerate(data):
        where = f"task {t}" + (f" (id {task.get('id')})" if isinstance(task, dict) and "id" in task else "")
        if not isinstance(task, dict):
            raise InputError("task must be an object", source=source, where=where)
        task_data = task.get("data") or {}
        for r, result in enumerate(_annotation_results(task, where, source)):
            rwhere = f"{where} result {r}"
            kind = str(result.get("type", "")).lower()
            value = result.get("value") or {}
            if kind == "rectanglelabels":
                name = task_data.get("image") or next((v for v in task_data.values() if isinstance(v, str)), None)
                frame = task_data.get("frame")
                if isinstance(frame, bool) or not isinstance(frame, int):
                    frame = frame_from_name(name) if name else None
                if frame is None or frame > MAX_FRAME:
                    raise InputError(
                        f"no frame number from 1 to {MAX_FRAME:,} in image name {name!r}",
                        source=source,
                        where=where,
                        field="data.image",
                    )
                if image_frames.setdefault(frame, t) != t:
                    raise InputError(
                        f"frame {frame} already given by task {image_frames[frame]}",
                        source=source,
                        where=where,
                        field="data.image",
                    )
                size = _image_size(result, rwhere, source, frame_size)
                track = builder.track_id(result.get("id", f"task{t}-result{r}"), rwhere)
                cls = builder.label(value.get("rectanglelabels"), rwhere)
                builder.add(frame, track, cls, value, size, rwhere)
            elif kind == "videorectangle":
                size = _image_size(result, rwhere, source, frame_size)
                track = builder.track_id(result.get("id", f"task{t}-result{r}"), rwhere)
                cls = builder.label(value.get("labels"), rwhere)
                boxes = _expand_sequence(value, rwhere, source, num_frames)
                video_rows += len(boxes)
                if video_rows > MAX_VIDEO_ROWS:
                    raise InputError(f"video regions expand to more than {MAX_VIDEO_ROWS:,} rows", source=source,
                                     where=rwhere)  # fmt: skip
                for frame, box in boxes:
                    builder.add(frame, track, cls, box, size, f"{rwhere} frame {frame}")
    return builder.result()


def read_labelstudio(
    path: str | os.PathLike, classes: dict[str, int] | None = None, frame_size: tuple[int, int] | None = None
) -> LabelStudioGT:
    return parse_labelstudio(read_json(path), str(path), classes, frame_size)
