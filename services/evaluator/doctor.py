"""The dataset doctor: finds the data mistakes that silently ruin tracking numbers.

Each check returns findings with a stable code, a severity, evidence and a one-line fix.
The checks come from mistakes the group actually made: a det_db covering 300 of 1860
frames or keyed for another sequence, a det_db that is the ground truth with score 1.0,
ground truth whose ids restart every frame, empty tracker outputs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from shared.errors import InputError
from shared.formats.det_db import (
    MAX_PROPOSALS_PER_FRAME,
    det_db_key,
    parse_key,
    read_det_db,
    read_det_db_classes,
    sequences,
)
from shared.formats.mot_txt import MotTable, read_mot
from shared.schemas import DoctorReport, Finding, Severity

from .ground_truth import read_ground_truth

E, W, I = Severity.error, Severity.warning, Severity.info  # noqa: E741
_KEY_SHAPE = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)(?P<ext>\.[A-Za-z]+)?$")


def _finding(code, severity, message, fix, **evidence) -> Finding:
    return Finding(code=code, severity=severity, message=message, evidence=evidence, fix=fix)


def _key_pattern(keys: list[str]) -> str | None:
    """The shape of the keys, e.g. 'seq/img1/{frame:06d}' or 'img/{frame:08d}.jpg'."""
    match = _KEY_SHAPE.match(keys[0]) if keys else None
    if match is None:
        return None
    return f"{match['prefix']}{{frame:0{len(match['digits'])}d}}{match['ext'] or ''}"


def _longest_run(flags: np.ndarray) -> tuple[int, int]:
    """(start index, length) of the longest run of True."""
    best, start, run_start = (0, 0), None, 0
    for i, flag in enumerate(np.append(flags, False)):
        if flag and start is None:
            start = run_start = i
        elif not flag and start is not None:
            if i - run_start > best[1]:
                best = (run_start, i - run_start)
            start = None
    return best


def check_boxes(what: str, table: MotTable, frame_size: tuple[int, int] | None) -> list[Finding]:
    findings = []
    zero = np.flatnonzero((table.boxes[:, 2] == 0) | (table.boxes[:, 3] == 0))
    if zero.size:
        findings.append(_finding(
            f"{what.upper()}_ZERO_SIZE_BOXES", W, f"{zero.size} {what} boxes have zero width or height",
            "drop degenerate boxes; they never match anything", count=int(zero.size),
            example_frame=int(table.frame[zero[0]]),
        ))  # fmt: skip
    if frame_size is not None and len(table):
        width, height = frame_size
        x, y, w, h = table.boxes.T
        outside = np.flatnonzero((x + w <= 0) | (y + h <= 0) | (x >= width) | (y >= height))
        if outside.size:
            findings.append(_finding(
                f"{what.upper()}_BOXES_OUTSIDE_IMAGE", E,
                f"{outside.size} {what} boxes lie entirely outside the {width}x{height} image",
                "check the box format (x,y,w,h in pixels of the original frame) and the frame size",
                count=int(outside.size), example_frame=int(table.frame[outside[0]]),
                example_box=[round(float(v), 2) for v in table.boxes[outside[0]]],
            ))  # fmt: skip
    pairs, counts = np.unique(np.column_stack([table.frame, table.id]), axis=0, return_counts=True)
    if (counts > 1).any():
        frame, track = (int(v) for v in pairs[counts > 1][0])
        findings.append(_finding(
            f"{what.upper()}_DUPLICATE_IDS", E, f"{what}: id {track} appears more than once in frame {frame}",
            "give every object in a frame its own id", frame=frame, id=track, count=int((counts > 1).sum()),
        ))  # fmt: skip
    return findings


def check_det_db(
    det_db: Mapping[str, np.ndarray],
    sequence: str | None,
    num_frames: int | None,
    frame_size: tuple[int, int] | None = None,
    gt: MotTable | None = None,
) -> list[Finding]:
    findings: list[Finding] = []
    keys = list(det_db)
    names = sequences(keys)
    if sequence is None and len(names) == 1:
        sequence = next(iter(names))
    total = sum(len(v) for v in det_db.values())
    if not keys or total == 0:
        findings.append(
            _finding(
                "DETDB_EMPTY",
                E,
                f"the det_db has {len(keys)} keys and no detections at all",
                "run the detector again; MOTRv2 gets no proposals from this file",
                keys=len(keys),
            )
        )
    if sequence is None:
        if len(names) > 1:
            findings.append(
                _finding(
                    "DETDB_MANY_SEQUENCES",
                    I,
                    f"the det_db holds {len(names)} sequences",
                    "name the sequence to check",
                    sequences=sorted(names)[:10],
                )
            )
        return findings
    frames = sorted(f for k in keys if (p := parse_key(k)) and p[0] == sequence for f in [p[1]])
    expected = num_frames or (frames[-1] if frames else 0)
    if not frames:
        pattern = _key_pattern(keys)
        other = sorted(names)[:3]
        findings.append(_finding(
            "DETDB_KEY_MISMATCH", E,
            f"no det_db key matches sequence {sequence!r}: expected {det_db_key(sequence, 1)!r}",
            f"re-key the det_db to '{sequence}/img1/{{frame:06d}}' or evaluate the sequence it was made for"
            + (f" ({other[0]!r})" if other else ""),
            expected_key=det_db_key(sequence, 1), available_key=keys[0] if keys else None,
            nearest_pattern=pattern, sequences_in_det_db=other,
        ))  # fmt: skip
        return findings
    covered = np.zeros(expected + 1, dtype=bool)
    in_range = [f for f in frames if f <= expected]
    covered[in_range] = True
    missing = np.flatnonzero(~covered[1:]) + 1
    if missing.size:
        findings.append(_finding(
            "DETDB_PARTIAL_COVERAGE", E,
            f"the det_db covers {expected - missing.size} of {expected} frames of {sequence!r}",
            "run the detector over every frame of the sequence (MOTRv2 fails or goes blind on missing keys)",
            covered=int(expected - missing.size), frames=int(expected),
            first_missing_key=det_db_key(sequence, int(missing[0])),
        ))  # fmt: skip
    extra = [f for f in frames if f > expected]
    if extra:
        findings.append(_finding(
            "DETDB_EXTRA_FRAMES", W, f"{len(extra)} det_db keys are beyond the {expected} frames",
            "check that the det_db was made from this video", first_extra_key=det_db_key(sequence, extra[0]),
        ))  # fmt: skip
    counts = np.array([len(det_db.get(det_db_key(sequence, f), ())) for f in range(1, expected + 1)])
    crowded = np.flatnonzero(counts > MAX_PROPOSALS_PER_FRAME)
    if crowded.size:
        findings.append(_finding(
            "DETDB_TOO_MANY_PROPOSALS", E,
            f"{crowded.size} frame(s) hold more than {MAX_PROPOSALS_PER_FRAME:,} proposals (up to {counts.max():,})",
            "make the det_db again with the detector's score threshold: trackers refuse such frames",
            first_key=det_db_key(sequence, int(crowded[0]) + 1), most=int(counts.max()),
        ))  # fmt: skip
    start, length = _longest_run((counts == 0) & covered[1:])
    if total and length >= max(25, expected // 20):
        findings.append(_finding(
            "DETDB_EMPTY_RUN", W, f"{length} consecutive frames have no detections (from frame {start + 1})",
            "check the detector's thresholds and region of interest for that stretch",
            first_frame=start + 1, length=int(length), empty_frames=int((counts == 0).sum()),
        ))  # fmt: skip
    rows = [np.column_stack([np.full(len(det_db[det_db_key(sequence, f)]), f), det_db[det_db_key(sequence, f)]])
            for f in frames if len(det_db[det_db_key(sequence, f)])]  # fmt: skip
    dets = np.concatenate(rows) if rows else np.zeros((0, 6))
    table = MotTable.from_matrix(
        np.column_stack([dets[:, 0], np.arange(len(dets)), dets[:, 1:6], np.full((len(dets), 3), -1)])
    )
    findings += [f for f in check_boxes("det_db", table, frame_size) if not f.code.endswith("DUPLICATE_IDS")]
    if len(dets):
        findings += _detector_plausibility(dets, gt)
    return findings


def _detector_plausibility(dets: np.ndarray, gt: MotTable | None) -> list[Finding]:
    findings = []
    scores = dets[:, 5]
    copied = 0.0
    if gt is not None and len(gt):
        gt_keys = {(int(f), *np.round(b, 1)) for f, b in zip(gt.frame, gt.boxes, strict=True)}
        det_keys = {(int(f), *np.round(b, 1)) for f, b in zip(dets[:, 0], dets[:, 1:5], strict=True)}
        copied = len(gt_keys & det_keys) / len(gt_keys)
    if copied >= 0.9 and (scores == 1.0).mean() >= 0.9:
        findings.append(_finding(
            "DETDB_COPY_OF_GT", E, f"{copied:.0%} of the ground-truth boxes appear unchanged in the det_db, score 1.0",
            "make the det_db with a detector: proposals copied from the ground truth inflate every metric",
            share_of_gt_boxes=round(copied, 4),
        ))  # fmt: skip
    elif (scores == 1.0).all():
        findings.append(
            _finding(
                "DETDB_SCORES_ALL_ONE",
                W,
                "every det_db score is 1.0",
                "detector scores vary; a constant 1.0 suggests copied or hand-made boxes",
            )
        )
    if len(dets) >= 20:
        sizes = dets[:, 3:5]
        spread = sizes.std(axis=0) / np.maximum(sizes.mean(axis=0), 1e-9)
        if (spread < 0.01).all():
            findings.append(_finding(
                "DETDB_ONE_SIZE", W, "all det_db boxes have the same size",
                "check which detector made this file: real detections vary in size",
                width=round(float(sizes[0, 0]), 2), height=round(float(sizes[0, 1]), 2),
            ))  # fmt: skip
    if gt is not None and len(gt):
        per_frame = np.bincount(dets[:, 0].astype(int))
        gt_per_frame = np.bincount(gt.frame)
        common = np.flatnonzero(gt_per_frame[: len(per_frame)] > 0)
        if common.size and np.median(per_frame[common]) < 0.5 * np.median(gt_per_frame[common]):
            findings.append(_finding(
                "DETDB_FEW_BOXES", W,
                f"median {np.median(per_frame[common]):g} det_db boxes per frame for "
                f"{np.median(gt_per_frame[common]):g} ground-truth objects",
                "check the detector, its class filter and score threshold",
            ))  # fmt: skip
    return findings


def check_gt(gt: MotTable, num_frames: int | None, frame_size: tuple[int, int] | None) -> list[Finding]:
    findings = check_boxes("gt", gt, frame_size)
    if len(gt) == 0:
        return [_finding("GT_EMPTY", E, "the ground truth has no boxes", "export the annotations again")]
    frames = np.unique(gt.frame)
    ids, first = np.unique(gt.id, return_index=True)
    lifetimes = np.array([len(np.unique(gt.frame[gt.id == i])) for i in ids])
    if len(frames) > 1 and (lifetimes == 1).all():
        per_frame = np.bincount(gt.frame)[frames]
        findings.append(_finding(
            "GT_IDS_RESTART", E, f"no ground-truth id persists across frames ({len(ids)} ids, each in one frame)",
            "export tracks, not per-frame boxes: the same object needs the same id in every frame",
            ids=int(len(ids)), frames=int(len(frames)), max_objects_per_frame=int(per_frame.max()),
        ))  # fmt: skip
    elif np.median(lifetimes) < 3 and len(ids) > 3 * np.bincount(gt.frame).max():
        findings.append(_finding(
            "GT_IDS_JUMP", W, f"ground-truth ids are short-lived (median {np.median(lifetimes):g} frames)",
            "check that ids follow each object through the sequence", ids=int(len(ids)),
        ))  # fmt: skip
    if num_frames is not None and frames[-1] > num_frames:
        beyond = frames[frames > num_frames]
        findings.append(_finding(
            "GT_BEYOND_FRAMES", E, f"ground truth has {beyond.size} frames after the video's last frame {num_frames}",
            "cut the ground truth to the video's frame range or use the matching video",
            last_gt_frame=int(frames[-1]), frames=int(num_frames), first_beyond=int(beyond[0]),
        ))  # fmt: skip
    return findings


def check_tracks(tracks: MotTable) -> list[Finding]:
    if len(tracks) == 0:
        return [
            _finding(
                "TRACKS_EMPTY",
                E,
                "the tracker output is empty (0 rows)",
                "check the tracker's score threshold and that it found its det_db keys",
            )
        ]
    findings = check_boxes("tracks", tracks, None)
    ids, counts = np.unique(tracks.id, return_counts=True)
    short = int((counts <= 3).sum())
    if short >= 100 and short > 0.5 * len(ids):
        findings.append(_finding(
            "TRACKS_FRAGMENTED", W, f"{short} of {len(ids)} track ids live 3 frames or less",
            "raise the tracker's miss tolerance or lower its thresholds; check the det_db's coverage",
            short_lived_ids=short, ids=int(len(ids)),
        ))  # fmt: skip
    if len(tracks) > 1 and np.unique(tracks.conf).size == 1:
        findings.append(_finding(
            "TRACKS_SCORES_IDENTICAL", W, f"every track score is {float(tracks.conf[0]):g}",
            "write the tracker's scores: constant scores hide low-confidence boxes", score=float(tracks.conf[0]),
        ))  # fmt: skip
    return findings


def run_doctor(
    det_db_path=None,
    gt_path=None,
    tracks_path=None,
    sequence: str | None = None,
    num_frames: int | None = None,
    frame_size: tuple[int, int] | None = None,
) -> DoctorReport:
    findings: list[Finding] = []
    gt = None
    if gt_path is not None:
        try:
            _, gt = read_ground_truth(gt_path, num_frames=num_frames)
            findings += check_gt(gt, num_frames, frame_size)
        except InputError as exc:
            findings.append(_finding("GT_UNPARSABLE", E, str(exc), "fix the file at the place named"))
    if det_db_path is not None:
        try:
            det_db = read_det_db(det_db_path)
            findings += check_det_db(det_db, sequence, num_frames, frame_size, gt)
        except InputError as exc:
            det_db = None
            findings.append(_finding("DETDB_UNPARSABLE", E, str(exc), "fix the file at the place named"))
        try:
            if det_db is not None:
                read_det_db_classes(det_db_path, det_db)
        except InputError as exc:
            fix = "write the det_db and its classes sidecar again together (motpipe detect)"
            findings.append(_finding("DETDB_CLASSES_MISMATCH", E, str(exc), fix))
    if tracks_path is not None:
        try:
            findings += check_tracks(read_mot(tracks_path))
        except InputError as exc:
            findings.append(_finding("TRACKS_UNPARSABLE", E, str(exc), "fix the file at the place named"))
    order = {E: 0, W: 1, I: 2}
    return DoctorReport(findings=sorted(findings, key=lambda f: order[f.severity]))
