"""The annotation loop through the group's Label Studio: push a run's picked frames (the frame images
uploaded into Label Studio, the run's tracks as predictions whose region ids are `track_<id>`) and pull the
finished annotations back into the run's ground truth.

A pull reads the export with the same reader as a Label Studio ground-truth upload (`track_<n>` keeps n, a
region drawn in the editor gets a new id above every id of the ground truth). An annotated frame's boxes
replace that frame's old ones, other frames stay; the frames a human submitted (an empty one included) join
the run's annotated frames, which `annotated_only` then scores. Pulling again changes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from shared.errors import ConflictError
from shared.formats.conversions import labelstudio_results
from shared.formats.labelstudio import DEFAULT_CLASSES, parse_labelstudio
from shared.formats.mot_txt import MotTable, format_mot, read_mot, write_mot
from shared.frames import open_frames
from shared.run_store import RunStore

from .ground_truth import read_ground_truth
from .label_studio import LabelStudio
from .picking import Pick
from .store import annotated_frames, install_ground_truth, run_frame_count

UPLOAD_BATCH = 20  # frame images per upload request


def frame_images(
    video: str | Path, frames: list[int], name: str, progress: Callable[[int, int], None] | None = None
) -> dict[int, tuple[str, bytes]]:
    """JPEG bytes of `frames` of `video` as `<name>_<frame:06d>.jpg` (decoded in one pass up to the last;
    `progress(frames decoded, frames to decode)`: on a long match that is most of a push's time)."""
    wanted, out, number = set(frames), {}, 0
    last = max(wanted, default=0)
    for number, image in open_frames(video):
        if progress:
            progress(number, last)
        if number in wanted:
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            if not ok:
                raise ConflictError(f"frame {number} of {video} could not be encoded as JPEG")
            out[number] = (f"{name}_{number:06d}.jpg", data.tobytes())
        if len(out) == len(wanted):
            break
    missing = sorted(wanted - set(out))
    if missing:
        raise ConflictError(f"frame(s) {missing[:5]} are not in {Path(video).name} ({number} frames)")
    return out


def push(
    store: RunStore,
    run_id: str,
    studio: LabelStudio,
    picks: list[Pick],
    project: str | None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Tasks for the picked frames the project does not hold yet; returns what the project holds now."""
    record = store.get(run_id)
    video = record.inputs.get("frames")
    if not video or not Path(video).is_file():
        raise ConflictError(f"run {run_id} has no input video on disk to take frames from")
    info = record.inputs.get("video") or {}
    source = open_frames(video)
    size = (int(info.get("width") or source.size[0]), int(info.get("height") or source.size[1]))
    found = studio.project(project or f"motpipe {record.name or run_id}")
    tasks = studio.tasks(found["id"])
    held = {int(t["data"]["frame"]) for t in tasks
            if (t.get("data") or {}).get("run") == run_id and isinstance(t["data"].get("frame"), int)}  # fmt: skip
    new = [p for p in picks if p.frame not in held]
    folder = store.run_dir(run_id)
    tracks = read_mot(folder / "tracks.txt") if "tracks.txt" in record.artifacts else None
    sequence = str(record.inputs.get("sequence") or Path(str(record.inputs.get("upload") or run_id)).stem)
    images = frame_images(video, [p.frame for p in new], sequence, progress) if new else {}
    on_picked = tracks.select(np.isin(tracks.frame, [p.frame for p in new])) if tracks is not None else MotTable.empty()
    regions = labelstudio_results(on_picked, size)  # the run's tracks, region ids track_<id>
    model = f"{record.name or run_id} ({run_id})"
    for start in range(0, len(new), UPLOAD_BATCH):
        batch = new[start : start + UPLOAD_BATCH]
        urls = studio.upload_images(found["id"], [images[p.frame] for p in batch])
        studio.import_tasks(found["id"], [
            {"data": {"image": urls[images[p.frame][0]], "frame": p.frame, "run": run_id, "sequence": sequence,
                      "reason": p.reason},
             "predictions": [{"model_version": model, "result": regions.get(p.frame, [])}]}
            for p in batch
        ])  # fmt: skip
    frames = sorted(held | {p.frame for p in new})
    store.update(run_id, lambda r: r.inputs.update(label_studio={"url": studio.url, "project": found["id"],
                                                                  "frames": frames}))  # fmt: skip
    return {"project": found["id"], "title": found.get("title"), "added": len(new), "already": len(picks) - len(new),
            "tasks": len(tasks) + len(new)}  # fmt: skip


def pull(store: RunStore, run_id: str, studio: LabelStudio, project: str | int) -> dict:
    """Merge the project's finished annotations of this run into its ground truth; says what changed."""
    record = store.get(run_id)
    found = studio.project(project)
    done = [t for t in studio.export(found["id"])
            if (t.get("data") or {}).get("run") == run_id
            and any(not a.get("was_cancelled") for a in t.get("annotations") or [])]  # fmt: skip
    summary = {"project": found["id"], "frames_added": 0, "frames_replaced": 0, "boxes": {}, "changed": False}
    if not done:
        return summary
    gt_path = store.gt_file(run_id)
    frames_count = run_frame_count(record)
    old = read_ground_truth(gt_path, num_frames=frames_count)[1] if gt_path else MotTable.empty()
    info = record.inputs.get("video") or {}
    size = (int(info["width"]), int(info["height"])) if info.get("width") and info.get("height") else None
    frames = sorted({int(t["data"]["frame"]) for t in done})
    kept = old.select(~np.isin(old.frame, frames))
    # a drawn region's new id is above the ids of the frames it does not replace: the same id on every pull
    pulled = parse_labelstudio(done, f"Label Studio project {found['id']}", frame_size=size, num_frames=frames_count,
                               taken={int(i) for i in np.unique(kept.id)}).table  # fmt: skip
    before = set(annotated_frames(store, run_id) or np.unique(old.frame).tolist())
    merged = MotTable.concat(kept, pulled)
    if _same(old, merged) and set(frames) <= before:
        return summary  # pulled before: nothing new
    folder = store.run_dir(run_id)
    write_mot(folder / "gt.txt", merged)
    install_ground_truth(store, run_id, "gt.txt", "mot", f"Label Studio project {found['id']}",
                         sorted(before | set(frames)))  # fmt: skip
    names = {cls: name for name, cls in DEFAULT_CLASSES.items()}
    boxes = Counter(names.get(cls, str(cls)) for cls in pulled.cls.tolist())
    summary |= {"frames_added": len(set(frames) - before), "frames_replaced": len(set(frames) & before),
                "boxes": dict(boxes), "changed": True}  # fmt: skip
    return summary


def _same(a: MotTable, b: MotTable) -> bool:
    """The same file: the rows as `write_mot` writes them (sorted, boxes to 2 decimals)."""
    text = lambda t: format_mot(t.select(np.lexsort((t.id, t.frame))))  # noqa: E731
    return len(a) == len(b) and text(a) == text(b)
