"""Which frames deserve a human's time next (the annotation loop's first step): pure functions over a run's
detections, tracks, ground-truth frames and error events, each pick with the reason it was made.

- `uncertain`: detections whose score is close to the tracker's threshold, tracks of low confidence, tracks
  born or lost (not at the clip's first or last frame);
- `disagree`: confident detections no track covers, tracks no detection supports, a track whose detection
  has another class;
- `errors`: frames that already carry ground truth, by their review events (misses, false positives, ID
  switches): where the tracker is systematically wrong;
- `uniform`: evenly spaced.
`uncertain`, `disagree` and `uniform` never pick a frame that already has ground truth; every strategy keeps
`min_gap` frames between picks, so 20 picks are not 20 copies of one moment. Ties go to the earlier frame.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from shared.formats.mot_txt import MotTable, rows_by_frame

STRATEGIES = ("uncertain", "disagree", "errors", "uniform")
NEAR = 0.1  # a detection this close to the threshold is uncertain; a track below threshold + NEAR is low
CONFIDENT = 0.2  # a detection this far above the threshold is confident
COVER_IOU = 0.5  # a track covers a detection (and a detection supports a track) at this IoU


@dataclass(frozen=True)
class Pick:
    frame: int
    reason: str
    weight: float  # how strongly the strategy asks for the frame (uniform: 0)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of l, t, w, h boxes."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a1, b1 = a[:, None, :2], b[None, :, :2]
    a2, b2 = a1 + a[:, None, 2:], b1 + b[None, :, 2:]
    inter = np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None).prod(-1)
    union = a[:, None, 2:].prod(-1) + b[None, :, 2:].prod(-1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _say(counts: Counter, names: dict[str, tuple[str, str]]) -> tuple[float, str]:
    """(weight, "2 misses, 1 ID switch") from counts and (singular, plural) names."""
    parts = [f"{n} {names[k][n != 1]}" for k, n in counts.items() if n]
    return float(sum(counts.values())), ", ".join(parts)


def uncertain_signals(detections: MotTable | None, tracks: MotTable | None, threshold: float, num_frames: int):
    near = f"within {NEAR} of the threshold {threshold}"
    names = {"near": (f"detection {near}", f"detections {near}"),
             "low": ("low-confidence track", "low-confidence tracks"),
             "born": ("track born", "tracks born"), "lost": ("track lost", "tracks lost")}  # fmt: skip
    counts: dict[int, Counter] = defaultdict(Counter)
    if detections is not None and len(detections):
        for frame in detections.frame[np.abs(detections.conf - threshold) <= NEAR]:
            counts[int(frame)]["near"] += 1
    if tracks is not None and len(tracks):
        for frame in tracks.frame[(tracks.conf >= 0) & (tracks.conf < threshold + NEAR)]:
            counts[int(frame)]["low"] += 1
        for track_id in np.unique(tracks.id):
            frames = tracks.frame[tracks.id == track_id]
            first, last = int(frames.min()), int(frames.max())
            if first > 1:
                counts[first]["born"] += 2  # a birth or loss weighs two uncertain boxes
            if last < num_frames:
                counts[last]["lost"] += 2
    out = {}
    for frame, count in counts.items():
        shown = Counter({k: (v // 2 if k in ("born", "lost") else v) for k, v in count.items()})
        out[frame] = (float(sum(count.values())), _say(shown, names)[1])
    return out


def disagree_signals(detections: MotTable | None, tracks: MotTable | None, threshold: float):
    names = {
        "uncovered": ("confident detection no track covers", "confident detections no track covers"),
        "unsupported": ("track no detection supports", "tracks no detection supports"),
        "class": ("track whose detection has another class", "tracks whose detection has another class"),
    }
    dets, trks = rows_by_frame(detections), rows_by_frame(tracks)
    out = {}
    for frame in sorted(set(dets) | set(trks)):
        d = dets.get(frame, np.zeros(0, dtype=np.int64))
        t = trks.get(frame, np.zeros(0, dtype=np.int64))
        iou = _iou(detections.boxes[d], tracks.boxes[t]) if len(d) and len(t) else np.zeros((len(d), len(t)))
        count = Counter()
        confident = detections.conf[d] >= threshold + CONFIDENT if len(d) else np.zeros(0, dtype=bool)
        count["uncovered"] = int((confident & ~(iou >= COVER_IOU).any(axis=1)).sum()) if len(d) else 0
        count["unsupported"] = int((~(iou >= COVER_IOU).any(axis=0)).sum()) if len(t) else 0
        if len(d) and len(t):
            best = iou.argmax(axis=0)
            supported = iou[best, np.arange(len(t))] >= COVER_IOU
            det_cls, trk_cls = detections.cls[d][best], tracks.cls[t]
            count["class"] = int((supported & (det_cls >= 0) & (trk_cls >= 0) & (det_cls != trk_cls)).sum())
        weight, reason = _say(count, names)
        if weight:
            out[frame] = (weight, reason)
    return out


def error_signals(events: list[dict]):
    names = {
        "fn": ("miss", "misses"),
        "fp": ("false positive", "false positives"),
        "idsw": ("ID switch", "ID switches"),
    }
    counts: dict[int, Counter] = defaultdict(Counter)
    for event in events:
        if event["kind"] in names:
            counts[int(event["frame"])][event["kind"]] += 1
    return {frame: _say(count, names) for frame, count in counts.items()}


def select(signals: dict[int, tuple[float, str]], n: int, min_gap: int, exclude: set[int]) -> list[Pick]:
    """The `n` heaviest frames, none in `exclude`, each at least `min_gap` frames from the others; by frame."""
    picked: list[Pick] = []
    for frame, (weight, reason) in sorted(signals.items(), key=lambda item: (-item[1][0], item[0])):
        if len(picked) == n:
            break
        if frame in exclude or any(abs(frame - p.frame) < min_gap for p in picked):
            continue
        picked.append(Pick(frame, reason, weight))
    return sorted(picked, key=lambda p: p.frame)


def uniform(num_frames: int, n: int, min_gap: int, exclude: set[int]) -> list[Pick]:
    """`n` frames without ground truth spread evenly over the clip (fewer when `min_gap` does not allow n)."""
    free = np.array([f for f in range(1, num_frames + 1) if f not in exclude])
    if n <= 0 or len(free) == 0:
        return []
    picked: list[int] = []
    for index in np.linspace(0, len(free) - 1, min(n, len(free))).round().astype(int):
        frame = int(free[index])
        if not picked or frame - picked[-1] >= min_gap:
            picked.append(frame)
    step = num_frames / max(1, len(picked))
    return [Pick(f, f"evenly spaced (one in every {step:.0f} frames)", 0.0) for f in picked]


def pick_frames(
    strategy: str,
    n: int,
    num_frames: int,
    annotated: set[int],
    threshold: float,
    detections: MotTable | None = None,
    tracks: MotTable | None = None,
    events: list[dict] | None = None,
    min_gap: int = 15,
) -> list[Pick]:
    """`n` frames (fewer when the clip or `min_gap` cannot give n) by `strategy`, ordered by frame."""
    if strategy == "uniform":
        return uniform(num_frames, n, min_gap, annotated)
    if strategy == "uncertain":
        return select(uncertain_signals(detections, tracks, threshold, num_frames), n, min_gap, annotated)
    if strategy == "disagree":
        return select(disagree_signals(detections, tracks, threshold), n, min_gap, annotated)
    if strategy == "errors":
        everything_else = set(range(1, num_frames + 1)) - annotated  # errors are read on annotated frames only
        return select(error_signals(events or []), n, min_gap, everything_else)
    raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
