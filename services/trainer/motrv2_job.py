"""A MOTRv2 training job from start to honest end: data and doctor gate, initial weights, strategy, the
training core's epoch loop, per-step logs (log.jsonl, TensorBoard, --log-json), per-epoch validation with
the evaluator, plots, and the job record (job.json).

The job is `succeeded` only after the last planned epoch (or the last of `max_steps` steps) finished and its
checkpoint is durable; any error marks it `failed` with the reason, and a killed process is read as failed
by `jobs.read_job`. Under torchrun every rank trains; rank 0 alone writes files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from services.evaluator.evaluate import evaluate
from services.tracker.motrv2.runtime import MOTRv2Runtime, proposals_from_rows
from services.tracker.motrv2.training.clip import ClipModel, ClipOptions
from services.tracker.motrv2.training.criterion import ClipCriterion
from services.tracker.motrv2.training.data import ClipDataset, DataConfig, SequenceData
from services.tracker.motrv2.training.loop import LoopConfig, Trainer
from services.tracker.motrv2.training.optim import OptimConfig, apply_trainable
from services.tracker.motrv2.training.transforms import AugmentConfig
from services.tracker.motrv2.training.weights import build_from_weights
from shared.errors import InputError
from shared.formats.mot_txt import MotTable
from shared.run_store import RunStore
from shared.schemas import JobRecord, TrainOptions
from shared.training import EpochResult

from . import sources
from .common import JobDriver, distributed, job_device, open_record, run_guarded

VAL_KEYS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")


@dataclass
class DataSpec:
    weights: Path
    root: Path | None = None
    det_db: Path | None = None
    runs: list[str] | None = None
    store: RunStore | None = None

    def describe(self) -> dict:
        return {
            "weights": str(self.weights),
            "root": self.root and str(self.root),
            "det_db": self.det_db and str(self.det_db),
            "runs": self.runs,
        }


def _load_sequences(data: DataSpec, cache: Path) -> tuple[list[SequenceData], dict]:
    if data.runs:
        if data.store is None:
            raise InputError("training from runs needs the run store", field="runs")
        return sources.from_runs(data.store, data.runs, cache)
    if data.root is None or data.det_db is None:
        raise InputError("give --data ROOT and --det-db DB (or runs)", field="data")
    return sources.from_dataset_root(data.root, data.det_db, cache)


def _split(sequences: list[SequenceData], val: list[str]) -> tuple[list[SequenceData], list[SequenceData], list[str]]:
    names = {s.name for s in sequences}
    unknown = [v for v in val if v not in names]
    if unknown:
        raise InputError(f"validation sequence(s) {unknown} not in the data ({sorted(names)[:5]})", field="val")
    held = [s for s in sequences if s.name in val]
    train = [s for s in sequences if s.name not in val]
    notes = []
    if held and not train:
        train = held
        notes.append("every sequence is a validation sequence: validation runs on the training data")
    return train, held, notes


@torch.no_grad()
def validate(model, sequences: list[SequenceData], short_side: int, device: torch.device) -> dict[str, float]:
    """Track every validation sequence with the current weights (official inference loop and thresholds)
    and evaluate against its ground truth; metrics over all sequences' rows pooled per sequence mean."""
    import cv2

    from services.tracker.motrv2.runtime import preprocess

    was_training = model.training
    model.eval()
    per_sequence = []
    try:
        for seq in sequences:
            runtime = MOTRv2Runtime(model, score_threshold=0.5, miss_tolerance=20, area_threshold=100.0)
            rows = []
            for number in sorted(seq.images):
                frame = cv2.imread(str(seq.images[number]), cv2.IMREAD_COLOR)
                size = frame.shape[:2]
                image = preprocess(frame, short=short_side, long=int(short_side * 1.92)).to(device)
                props = proposals_from_rows(seq.proposals.get(number, np.zeros((0, 5))).reshape(-1, 5), size)
                tracks = runtime.step(image, props.to(device), size)
                for track_id, (x, y, w, h), score, label in runtime.shown(tracks):
                    rows.append([number, track_id, x, y, w, h, score, label + 1, -1, -1])
            pred = MotTable.from_matrix(np.asarray(rows, dtype=np.float64).reshape(-1, 10))
            report = evaluate(seq.gt, pred, 0.5)
            per_sequence.append({k: float(report.trackeval[k]) for k in VAL_KEYS})
    finally:
        model.train(was_training)
    return {k: float(np.mean([m[k] for m in per_sequence])) for k in VAL_KEYS}


def run_motrv2_job(
    folder: Path,
    options: TrainOptions,
    data: DataSpec,
    device: str = "cpu",
    threads: int | None = None,
    log_json: Path | None = None,
    resume: bool = False,
    say: Callable[[str], None] = print,
    on_progress: Callable[[int, int | None], None] | None = None,
    job_id: str | None = None,
) -> JobRecord:
    """Train, validate and record; returns the final record (state succeeded or failed)."""
    folder = Path(folder)
    rank, world, local_rank = distributed()
    driver = JobDriver(folder, rank, world, log_json, resume, on_progress, say)
    return run_guarded(
        folder, rank, lambda: _run(folder, options, data, device, threads, resume, say, job_id, driver, local_rank)
    )


def _run(folder, options, data, device, threads, resume, say, job_id, driver: JobDriver, local_rank):
    world = driver.world
    torch_device = job_device(device, threads, world, local_rank)
    record = open_record(
        folder,
        resume,
        lambda: JobRecord(
            job=job_id or folder.name,
            model="motrv2",
            options=options.model_dump(mode="json"),
            data=data.describe(),
            planned_epochs=options.epochs,
            planned_steps=options.max_steps,
        ),
    )

    # data, doctor gate, split: refused input leaves no job behind (a record made by the API is marked failed)
    if not driver.writer:
        dist.barrier()  # rank 0 decodes video frames into the shared cache first
    sequences, det_db = _load_sequences(data, folder / "frame_cache")
    if driver.writer and world > 1:
        dist.barrier()
    accepted = sources.doctor_gate(sequences, det_db, options.accept)
    train_seqs, val_seqs, notes = _split(sequences, options.val)

    # model, strategy
    model, init_report = build_from_weights(data.weights, options.num_classes)
    num_classes = model.cfg.num_classes
    trainable = apply_trainable(model, options.strategy, options.trainable, options.lr_backbone)
    say(init_report)
    say(trainable.summary())
    model.to(torch_device)
    augment = AugmentConfig(options.flip, options.resize_crop, options.hsv) if options.augment else None
    dataset = ClipDataset(train_seqs, DataConfig(options.sampler_length, options.sample_interval, num_classes, augment))
    clip_model = ClipModel(
        model,
        ClipCriterion(num_classes),
        ClipOptions(options.query_denoise, options.random_drop, options.fp_ratio, options.activation_checkpoint),
    )
    wrapped = None
    if world > 1:
        ids = [torch_device.index] if torch_device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(clip_model, device_ids=ids, find_unused_parameters=True)
    optim = OptimConfig(
        options.lr,
        options.lr_backbone,
        options.lr_linear_proj_mult,
        options.weight_decay,
        options.lr_drop,
        options.clip_max_norm,
    )
    loop_cfg = LoopConfig(options.epochs, options.max_steps, options.seed, options.save_period, options.autocast, optim)
    args = {
        **options.model_dump(mode="json"),
        "num_classes": num_classes,
        "device": str(torch_device),
        "world_size": world,
    }
    trainer = Trainer(clip_model, dataset, loop_cfg, folder, torch_device, args, wrapped)
    if resume:
        trainer.resume(folder / "checkpoint.pth")
    steps_per_epoch = -(-len(dataset) // world)
    planned_steps = options.max_steps or steps_per_epoch * options.epochs

    def describe(r: JobRecord) -> None:
        r.planned_epochs = options.epochs
        r.strategy, r.trainable_params, r.total_params = trainable.strategy, trainable.trainable, trainable.total
        r.notes = [init_report] + ([trainable.note] if trainable.note else []) + notes
        r.accepted_findings = accepted
        r.data["train_sequences"] = [s.name for s in train_seqs]
        r.data["val_sequences"] = [s.name for s in val_seqs]
        r.data["clips_per_epoch"] = len(dataset)

    driver.start(record, planned_steps, trainer.global_step, trainer.start_epoch, describe)
    if driver.writer:
        say(f"{len(dataset)} clips per epoch from {len(train_seqs)} sequence(s); {planned_steps} steps planned")

    def on_epoch(result: EpochResult) -> None:
        def validation() -> dict[str, float] | None:
            if not val_seqs:
                return None
            val = validate(model, val_seqs, options.val_short_side, torch_device)
            return val

        driver.on_epoch(result, validation, trainer.global_step)

    driver.train(lambda: trainer.fit(driver.on_step, on_epoch))
    return driver.finish(options.max_steps, trainer.global_step)
