"""Where training data comes from, and the doctor gate it must pass before the first step.

Two sources: a dataset root in the group's layout (`<root>/<seq>/img1|video`, `<seq>/gt/gt.txt`, one det_db),
and motpipe runs (their input video, ground truth and det_db; each run is one sequence named by its id).
The doctor runs on every sequence; its errors refuse the job with the findings unless their codes are
accepted (`--accept CODE`), in which case the job record keeps them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from services.evaluator.doctor import check_det_db, check_gt
from services.evaluator.ground_truth import read_ground_truth
from services.tracker.motrv2.training.data import SequenceData, index_det_db, load_dataset_root
from shared.errors import InputError
from shared.formats.det_db import det_db_key, read_det_db
from shared.frames import extract_video_frames
from shared.run_store import RunStore
from shared.schemas import Finding, Severity


def from_dataset_root(root: Path, det_db_path: Path, cache: Path) -> tuple[list[SequenceData], dict]:
    det_db = read_det_db(det_db_path)
    return load_dataset_root(root, det_db, cache), det_db


def from_runs(store: RunStore, run_ids: list[str], cache: Path) -> tuple[list[SequenceData], dict]:
    """Each run's video (frames cached as PNG), ground truth (MOT or Label Studio) and det_db."""
    sequences, merged = [], {}
    for run_id in run_ids:
        record = store.get(run_id)
        folder = store.run_dir(run_id)
        video = record.inputs.get("frames")
        if not video or not Path(video).is_file():
            raise InputError(f"run {run_id} has no input video", field="runs")
        gt_file = store.gt_file(run_id)  # its own, or the run it was made from
        if gt_file is None:
            raise InputError(f"run {run_id} has no ground truth (POST /runs/{run_id}/gt first)", field="runs")
        if not (folder / "det_db.json").is_file():
            raise InputError(f"run {run_id} has no det_db (its detect stage has not succeeded)", field="runs")
        _, gt = read_ground_truth(gt_file)
        det_db = read_det_db(folder / "det_db.json")
        indexed = index_det_db(det_db)
        if len(indexed) > 1:
            raise InputError(f"run {run_id}'s det_db holds {len(indexed)} sequences", field="runs")
        proposals = next(iter(indexed.values()), {})
        images = extract_video_frames(Path(video), cache / run_id)
        sequences.append(SequenceData(run_id, images, gt, proposals, f"run {run_id} ground truth"))
        merged |= {det_db_key(run_id, f): rows for f, rows in proposals.items()}
    return sequences, merged


def _frame_size(seq: SequenceData) -> tuple[int, int] | None:
    image = cv2.imread(str(seq.images[min(seq.images)]), cv2.IMREAD_COLOR) if seq.images else None
    return None if image is None else (image.shape[1], image.shape[0])


def doctor_findings(sequences: list[SequenceData], det_db: dict) -> list[Finding]:
    """The doctor's ground-truth and det_db checks per sequence, each finding tagged with its sequence."""
    findings = []
    for seq in sequences:
        num_frames = max(seq.images) if seq.images else None
        size = _frame_size(seq)
        keyed = {det_db_key(seq.name, f): np.asarray(rows).reshape(-1, 5) for f, rows in seq.proposals.items()}
        found = check_gt(seq.gt, num_frames, size) + check_det_db(keyed or det_db, seq.name, num_frames, size, seq.gt)
        for finding in found:
            finding.evidence["sequence"] = seq.name
            finding.message = f"{seq.name}: {finding.message}"
        findings += found
    return findings


def doctor_gate(sequences: list[SequenceData], det_db: dict, accept: list[str]) -> list[Finding]:
    """Refuse on any error not accepted; returns the accepted error findings (kept in the job record)."""
    errors = [f for f in doctor_findings(sequences, det_db) if f.severity == Severity.error]
    refused = [f for f in errors if f.code not in accept]
    if refused:
        lines = "; ".join(f"{f.code}: {f.message}" for f in refused[:5])
        raise InputError(
            f"the doctor refuses this training data ({len(refused)} error(s)): {lines}. "
            f"Fix the data, or go on past named findings with --accept {' '.join(sorted({f.code for f in refused}))}",
            field="data",
        )
    return [f for f in errors if f.code in accept]
