"""What the review page draws: a run's ground truth, detections and tracks for a window of frames, and a video
a browser can play. Tables are parsed once per version of their files (size and modification time in the
key), so a 20,000-frame run answers a window as fast as a 200-frame one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import ConflictError, InputError
from shared.formats.conversions import det_db_to_mot
from shared.formats.det_db import read_det_db, read_det_db_classes, resolve_sequence
from shared.formats.mot_txt import MotTable, read_mot
from shared.run_store import RunStore
from shared.schemas import StageState

from .ground_truth import read_ground_truth
from .store import run_frame_count

LAYERS = ("gt", "det", "tracks")
MAX_WINDOW = 2000  # frames per request
_tables: dict[tuple, MotTable] = {}


def _cached(path: Path, read) -> MotTable:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _tables:
        if len(_tables) >= 12:
            _tables.pop(next(iter(_tables)))
        table = read()
        order = np.argsort(table.frame, kind="stable")  # frame windows become two binary searches
        _tables[key] = table.select(order) if len(table) else table
    return _tables[key]


def run_tables(store: RunStore, run_id: str, layers: tuple[str, ...]) -> dict[str, MotTable]:
    """The run's layers that exist, as MOT tables sorted by frame (detections: id = index in the frame,
    conf = score, class from the det_db's sidecar)."""
    record = store.get(run_id)
    folder = store.run_dir(run_id)
    out = {}
    if "gt" in layers and (gt := store.gt_file(run_id)) is not None:
        out["gt"] = _cached(gt, lambda: read_ground_truth(gt, num_frames=run_frame_count(record))[1])
    if "det" in layers and (folder / "det_db.json").is_file():

        def detections() -> MotTable:
            det_db = read_det_db(folder / "det_db.json")
            return det_db_to_mot(det_db, resolve_sequence(det_db, None, "det_db.json"),
                                 read_det_db_classes(folder / "det_db.json", det_db))  # fmt: skip

        out["det"] = _cached(folder / "det_db.json", detections)
    track = record.stages.get("track")
    if "tracks" in layers and track and track.state == StageState.succeeded and (folder / "tracks.txt").is_file():
        out["tracks"] = _cached(folder / "tracks.txt", lambda: read_mot(folder / "tracks.txt"))
    return out


def boxes_window(tables: dict[str, MotTable], first: int, last: int) -> dict[str, Any]:
    """`{"frames": {"<frame>": {"gt": [[id, class, l, t, w, h]…], "det": [[score, class, l, t, w, h]…],
    "tracks": [[id, class, l, t, w, h]…]}}}` for frames first..last (inclusive; frames without boxes absent)."""
    if last < first:
        raise InputError(f"'to' ({last}) is before 'from' ({first})", field="to")
    if last - first + 1 > MAX_WINDOW:
        raise InputError(f"at most {MAX_WINDOW} frames a request (asked {last - first + 1})", field="to")
    frames: dict[str, dict[str, list]] = {}
    for layer, table in tables.items():
        lo, hi = np.searchsorted(table.frame, [first, last + 1])
        rows = slice(int(lo), int(hi))
        lead = table.conf[rows].round(4) if layer == "det" else table.id[rows]
        values = zip(table.frame[rows].tolist(), lead.tolist(), table.cls[rows].tolist(),
                     table.boxes[rows].round(2).tolist(), strict=True)  # fmt: skip
        for frame, head, cls, box in values:
            frames.setdefault(str(frame), {}).setdefault(layer, []).append([head, cls, *box])
    return {"from": first, "to": last, "frames": frames}


def review_video(store: RunStore, run_id: str) -> Path:
    """A video of the run a browser plays: its input when that is H.264 in MP4, else an H.264 copy made
    once (`review.mp4`)."""
    from shared.frames import open_frames
    from shared.video import VideoWriter

    record = store.get(run_id)
    folder = store.run_dir(run_id)
    source = record.inputs.get("frames")
    if not source or not Path(str(source)).is_file():
        raise ConflictError(f"run {run_id} has no input video (a run made from images has nothing to play)")
    source = Path(str(source))
    codec = (record.inputs.get("video") or {}).get("codec")
    if codec == "h264" and source.suffix.lower() in (".mp4", ".m4v"):
        return source
    proxy = folder / "review.mp4"
    if "review.mp4" not in record.artifacts:
        frames = open_frames(source)
        temporary = folder / ".review.mp4.part"
        with VideoWriter(temporary, frames.fps, frames.size) as writer:
            for _, image in frames:
                writer.write(image)
        temporary.replace(proxy)
        store.update(run_id, lambda r: store.record_artifacts(r, folder, ["review.mp4"]))
    return proxy
