"""A D-FINE fine-tuning job from start to honest end: samples (frames + MOT/Label Studio ground truth, COCO
json, or motpipe runs), initial weights with optional class-aware initialisation, the training core's epoch
loop, per-step logs (log.jsonl, TensorBoard, --log-json), per-epoch COCO validation of the EMA weights,
plots, and the job record (job.json) — the same record, states and rules as the MOTRv2 jobs: `succeeded`
only once the planned epochs (or `max_steps` steps) finished and the checkpoint is durable.

Ground-truth class k (1 player, 2 ball in the group's files) trains model class k - 1, so `--classes`
lists the new classes in the ground truth's order (player=…,ball=…).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from services.detector.dfine.identify import resolve
from services.detector.dfine.training.data import Sample, check_boxes, from_coco, from_ground_truth, split
from services.detector.dfine.training.loop import DetTrainer, LoopConfig
from services.detector.dfine.training.optim import NO_AUG_FRACTION, OptimConfig, freeze_like_official
from services.detector.dfine.training.step import TrainModule
from services.detector.dfine.training.transforms import AugmentConfig
from services.detector.dfine.training.validate import coco_metrics, predict
from services.detector.dfine.training.weights import build_from_weights
from services.evaluator.evaluate import parse_frame_list
from services.evaluator.ground_truth import read_ground_truth
from shared.errors import InputError
from shared.formats.labelstudio import DEFAULT_CLASSES
from shared.run_store import RunStore
from shared.schemas import DFineTrainOptions, JobRecord
from shared.training import EpochResult

from .common import JobDriver, distributed, job_device, open_record, run_guarded


@dataclass
class DFineData:
    weights: Path
    frames: list[Path] = field(default_factory=list)  # paired with gt, one sequence each
    gt: list[Path] = field(default_factory=list)
    coco: Path | None = None
    images: Path | None = None
    runs: list[str] | None = None
    store: RunStore | None = None

    def describe(self) -> dict:
        return {
            "weights": str(self.weights),
            "frames": [str(p) for p in self.frames],
            "gt": [str(p) for p in self.gt],
            "coco": self.coco and str(self.coco),
            "images": self.images and str(self.images),
            "runs": self.runs,
        }


def gt_class_map(class_names: list[str]) -> dict[int, int]:
    """Ground-truth class k -> model class k - 1; a name the group's files know (player 1, ball 2) must sit at
    its id's place, so a reordered --classes cannot silently swap them."""
    if not class_names:
        raise InputError(
            'ground truth in MOT/Label Studio form needs --classes, e.g. player=person,ball="sports ball" '
            "(ground-truth class k trains the k-th class)",
            field="classes",
        )
    for position, name in enumerate(class_names, start=1):
        known = DEFAULT_CLASSES.get(name.lower())
        if known is not None and known != position:
            raise InputError(
                f"--classes puts {name} at place {position}, but the ground truth's {name} is class "
                f"{known}: list the classes in the ground truth's order",
                field="classes",
            )
    return {k: k - 1 for k in range(1, len(class_names) + 1)}


def load_samples(
    data: DFineData, options: DFineTrainOptions, class_names: list[str], num_classes: int, cache: Path
) -> tuple[list[Sample], list[str]]:
    empty = set(parse_frame_list(options.empty_frames)) if options.empty_frames else None
    samples, notes = [], []
    if data.coco is not None:
        if data.images is None:
            raise InputError("--coco needs --images DIR", field="images")
        found = from_coco(data.coco, data.images, options.remap_mscoco, num_classes)
        return found.samples, found.notes
    if data.runs:  # each run is one sequence named by its id
        sequences = [(run_id, *_run_inputs(data.store, run_id)) for run_id in data.runs]
    else:
        if not data.frames or len(data.frames) != len(data.gt):
            raise InputError("give --frames and --gt (one of each per sequence), or --coco and --images", field="data")
        sequences = [(Path(f).stem, Path(f), Path(g)) for f, g in zip(data.frames, data.gt, strict=True)]
    names = [name for name, _, _ in sequences]
    if len(set(names)) < len(names):
        raise InputError(
            f"two sequences share a name {names}: give frames with distinct file/folder names", field="frames"
        )
    class_of = gt_class_map(class_names)
    for name, frames, gt_path in sequences:
        _, gt = read_ground_truth(gt_path)  # empty ground truth is refused here, naming the file
        found = from_ground_truth(frames, gt, str(gt_path), class_of, cache / "frames", empty, name)
        samples += found.samples
        notes += found.notes
    return samples, notes


def _run_inputs(store: RunStore | None, run_id: str) -> tuple[Path, Path]:
    if store is None:
        raise InputError("training from runs needs the run store", field="runs")
    record = store.get(run_id)
    video = record.inputs.get("frames")
    if not video or not Path(video).is_file():
        raise InputError(f"run {run_id} has no input video", field="runs")
    gt = store.gt_file(run_id)  # its own, or the run it was made from
    if gt is None:
        raise InputError(f"run {run_id} has no ground truth (POST /runs/{run_id}/gt first)", field="runs")
    return Path(video), gt


def _flat(metrics: dict) -> dict[str, float]:
    """Job-record form: overall values and `<class>/<metric>`; undefined values (a class without boxes) left out."""
    out = {k: metrics[k] for k in ("mAP", "mAP50", "AR")}
    for name, entry in metrics["per_class"].items():
        out |= {f"{name}/{k}": v for k, v in entry.items() if k != "gt_boxes"}
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(v) and v >= 0}


def run_dfine_job(
    folder: Path,
    options: DFineTrainOptions,
    data: DFineData,
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
    dtype = torch.float64 if options.dtype == "float64" else torch.float32
    record = open_record(
        folder,
        resume,
        lambda: JobRecord(
            job=job_id or folder.name,
            model="dfine",
            options=options.model_dump(mode="json"),
            data=data.describe(),
            planned_epochs=options.epochs,
            planned_steps=options.max_steps,
        ),
    )

    # weights and data first: refused input leaves no job behind (a record made by the API is marked failed)
    size, dataset, _ = resolve(data.weights, options.size, options.dataset)  # what the checkpoint is
    options = options.model_copy(update={"size": size, "dataset": dataset})
    record.options.update(size=size, dataset=dataset)  # the record says what was trained (driver.start writes it)
    init = build_from_weights(data.weights, options.size, options.dataset, options.classes, options.reinit_classes)
    model = init.model
    if not driver.writer:
        dist.barrier()  # rank 0 decodes video frames into the shared cache first
    samples, notes = load_samples(data, options, init.classes, model.num_classes, folder / "cache")
    if driver.writer and world > 1:
        dist.barrier()
    check_boxes(samples)
    train_samples, val_samples = split(samples, options.val)
    if val_samples is train_samples:
        notes.append("--val holds out every sample: validation runs on the training data")
    say(init.report)

    freeze_like_official(model, options.size)
    model.to(torch_device, dtype)
    no_aug = options.no_aug_epochs
    if no_aug is None:
        no_aug = max(1, round(options.epochs * NO_AUG_FRACTION[options.size])) if options.epochs > 1 else 0
    augment = None
    if options.augment:
        augment = AugmentConfig(
            options.photometric, options.zoom_out, options.iou_crop, options.flip, stop_epoch=options.epochs - no_aug
        )
    multiscale = options.size != "n" if options.multiscale is None else options.multiscale
    optim = OptimConfig(
        options.size, options.lr, options.weight_decay, options.warmup_steps, options.clip_max_norm, options.ema_decay
    )
    cfg = LoopConfig(
        options.epochs,
        options.batch_size,
        options.max_steps,
        options.seed,
        options.img_size,
        multiscale and options.augment,
        100 if options.denoising else 0,
        options.autocast,
        dtype,
        options.save_period,
        augment,
        optim,
        workers=options.workers if options.workers is not None else (4 if torch_device.type == "cuda" else 0),
    )
    wrapped = None
    if world > 1:
        ids = [torch_device.index] if torch_device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(
            TrainModule(model), device_ids=ids, find_unused_parameters=True
        )
    meta = {**init.meta(options.size, options.dataset), "img_size": options.img_size}
    trainer = DetTrainer(model, train_samples, cfg, folder, torch_device, meta, wrapped)
    if resume:
        trainer.resume(folder / "checkpoint.pth")
    planned_steps = options.max_steps or trainer.steps_per_epoch() * options.epochs
    class_names = init.classes or [str(i) for i in range(model.num_classes)]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def describe(r: JobRecord) -> None:
        r.planned_epochs = options.epochs
        r.trainable_params, r.total_params = trainable, sum(p.numel() for p in model.parameters())
        r.notes = [init.report, *notes]
        r.data["classes"] = init.classes
        r.data["train_samples"], r.data["val_samples"] = len(train_samples), len(val_samples)

    driver.start(record, planned_steps, trainer.global_step, trainer.start_epoch, describe)
    if driver.writer:
        say(f"{len(train_samples)} training samples, {len(val_samples)} validation; {planned_steps} steps planned")

    def on_epoch(result: EpochResult) -> None:
        def validation() -> dict[str, float] | None:
            if not val_samples:
                return None
            predictions = predict(trainer.ema.module, val_samples, options.img_size, torch_device, dtype)
            val = _flat(coco_metrics(val_samples, predictions, class_names, options.val_score))
            return val

        driver.on_epoch(result, validation, trainer.global_step)

    driver.train(lambda: trainer.fit(driver.on_step, on_epoch))
    return driver.finish(options.max_steps, trainer.global_step)
