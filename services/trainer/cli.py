"""`motpipe train motrv2 …`: registers its own subcommand on the gateway's parser."""

from __future__ import annotations

import argparse
from pathlib import Path

from shared.cli import console, progress_bar
from shared.errors import InputError


def _options(args) -> dict:
    values = {
        "strategy": args.strategy,
        "trainable": args.trainable,
        "epochs": args.epochs,
        "lr": args.lr,
        "lr_backbone": args.lr_backbone,
        "lr_drop": args.lr_drop,
        "batch_size": args.batch_size,
        "sampler_length": args.sampler_length,
        "sample_interval": args.sample_interval,
        "query_denoise": args.query_denoise,
        "random_drop": args.random_drop,
        "fp_ratio": args.fp_ratio,
        "num_classes": args.num_classes,
        "val": args.val or [],
        "val_short_side": args.val_short_side,
        "accept": args.accept or [],
        "max_steps": args.max_steps,
        "augment": not args.no_augment,
        "flip": not args.no_flip,
        "resize_crop": not args.no_resize_crop,
        "hsv": not args.no_hsv,
        "seed": args.seed,
        "save_period": args.save_period,
        "activation_checkpoint": args.activation_checkpoint,
        "autocast": args.autocast,
    }
    return {k: v for k, v in values.items() if v is not None}


def cmd_train_motrv2(args) -> int:
    from shared.schemas import TrainOptions
    from shared.settings import get_settings, pick_device

    from .grid import parse_grid, run_grid
    from .motrv2_job import DataSpec, run_motrv2_job

    if args.list_strategies:
        return _list_strategies(args)
    for flag in ("data", "det_db", "weights", "out"):
        if not getattr(args, flag):
            raise InputError(f"--{flag.replace('_', '-')} is required")
    options = TrainOptions(**_options(args))  # an option out of range: the CLI names it and exits 2
    data = DataSpec(weights=Path(args.weights), root=Path(args.data), det_db=Path(args.det_db))
    device = pick_device(args.device or get_settings().device)
    out = Path(args.out)
    if args.grid:
        table = run_grid(out, options, parse_grid(args.grid), data, device, args.threads, console.print)
        failed = [row for row in table if row["state"] != "succeeded"]
        return 1 if failed else 0

    return _run_job(run_motrv2_job, out, options, data, device, args)


def _run_job(run, out: Path, options, data, device: str, args) -> int:
    """One training job with a progress bar; exit 0 only when it succeeded."""
    from shared.schemas import StageState

    log_json = Path(args.log_json) if args.log_json else None
    with progress_bar("train") as update:
        record = run(out, options, data, device, args.threads, log_json, args.resume, console.print, update)
    if record.state != StageState.succeeded:
        console.print(f"motpipe train: failed: {record.error}", markup=False, highlight=False)
        return 1
    console.print(f"succeeded: {record.finished_epochs} epoch(s), {record.progress.done} steps -> {out}/checkpoint.pth")
    return 0


def _list_strategies(args) -> int:
    from services.tracker.motrv2.config import MOTRv2Config
    from services.tracker.motrv2.model import MOTRv2
    from services.tracker.motrv2.training.optim import list_strategies
    from services.tracker.motrv2.training.weights import build_from_weights

    if args.weights:
        model, _ = build_from_weights(args.weights, args.num_classes)
    else:
        model = MOTRv2(MOTRv2Config(num_classes=args.num_classes or 1))
    for trainable in list_strategies(model, args.lr_backbone):
        console.print(trainable.summary(), markup=False, highlight=False)
        if trainable.keys is not None:
            console.print("  " + ", ".join(trainable.names), markup=False, highlight=False)
    return 0


def _d(name: str):
    """The option's default, from the one schema (TrainOptions)."""
    from shared.schemas import TrainOptions

    return TrainOptions.model_fields[name].default


def register(sub: argparse._SubParsersAction) -> None:
    """`train motrv2`, `train dfine` and `sweep`."""
    register_sweep(sub)
    train = sub.add_parser("train", help="fine-tune a model on your own data")
    models = train.add_subparsers(dest="model", required=True)
    p = models.add_parser(
        "motrv2",
        help="fine-tune MOTRv2 (official loss, optimizer and schedule)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", help="dataset root: <root>/<seq>/img1/<frame:06d>.jpg (or a video) + <seq>/gt/gt.txt")
    p.add_argument("--det-db", help="det_db keyed <seq>/img1/<frame:06d> (or official <split>/<seq>/img1/<f:08d>.txt)")
    p.add_argument("--weights", help="initial weights: an official or fine-tuned MOTRv2 checkpoint (weights only)")
    p.add_argument("--out", help="job folder: job.json, checkpoints, log.jsonl, tensorboard/, plots/")
    p.add_argument("--strategy", default=_d("strategy"), help="minimal, moderate, aggressive (= moderate) or full")
    p.add_argument("--trainable", nargs="+", metavar="KEY", help="train parameters whose name contains a KEY")
    p.add_argument("--list-strategies", action="store_true", help="print every strategy's trainable set and exit")
    p.add_argument("--epochs", type=int, default=_d("epochs"), help="epochs to train")
    p.add_argument("--lr", type=float, default=_d("lr"), help="learning rate of the transformer")
    p.add_argument("--lr-backbone", type=float, default=_d("lr_backbone"), help="0 freezes the backbone")
    p.add_argument("--lr-drop", type=int, default=_d("lr_drop"), help="learning rates x0.1 every N epochs")
    p.add_argument("--batch-size", type=int, default=_d("batch_size"), help="clips per step and GPU (the official 1)")
    p.add_argument("--sampler-length", type=int, default=_d("sampler_length"), help="frames per clip")
    p.add_argument(
        "--sample-interval",
        type=int,
        default=_d("sample_interval"),
        help="the frame step of a clip is drawn from 1..N+1 (the official meaning); 0 = consecutive",
    )
    p.add_argument(
        "--query-denoise", type=float, default=_d("query_denoise"), help="denoise-query jitter; 0 turns them off"
    )
    p.add_argument(
        "--random-drop", type=float, default=_d("random_drop"), help="drop carried tracks with this probability"
    )
    p.add_argument(
        "--fp-ratio", type=float, default=_d("fp_ratio"), help="add false-positive tracks with this probability"
    )
    p.add_argument("--num-classes", type=int, help="default: the checkpoint's class count")
    p.add_argument("--val", nargs="+", metavar="SEQ", help="validation sequences, tracked and scored every epoch")
    p.add_argument(
        "--val-short-side", type=int, default=_d("val_short_side"), help="validation frames' shorter side (inference)"
    )
    p.add_argument("--accept", nargs="+", metavar="CODE", help="go on past these doctor findings")
    p.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="one job per combination, e.g. lr=5e-6,1e-5")
    p.add_argument("--resume", action="store_true", help="continue the job in --out from its checkpoint.pth")
    p.add_argument("--max-steps", type=int, help="N steps are the whole plan (ends succeeded)")
    p.add_argument("--no-augment", action="store_true", help="frames at their stored size, no flip/crop/HSV")
    p.add_argument("--no-flip", action="store_true", help="switch off the random horizontal flip")
    p.add_argument("--no-resize-crop", action="store_true", help="switch off the random resize and crop")
    p.add_argument("--no-hsv", action="store_true", help="switch off the random HSV gains")
    p.add_argument("--seed", type=int, default=_d("seed"), help="seed of the data order and augmentation")
    p.add_argument("--save-period", type=int, help="also keep checkpoint<epoch>.pth every N epochs")
    p.add_argument("--activation-checkpoint", action="store_true", help="recompute activations (less memory)")
    p.add_argument("--autocast", action="store_true", help="bf16 autocast (for GPUs)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: MOTPIPE_DEVICE or auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: OMP_NUM_THREADS or torch's)")
    p.add_argument("--log-json", help="JSON Lines of every step's loss terms, loss and grad_norm")
    p.set_defaults(func=cmd_train_motrv2)
    register_dfine(models)


_DFINE_FLAGS = (
    "size",
    "dataset",
    "classes",
    "reinit_classes",
    "remap_mscoco",
    "epochs",
    "lr",
    "weight_decay",
    "batch_size",
    "img_size",
    "warmup_steps",
    "ema_decay",
    "clip_max_norm",
    "no_aug_epochs",
    "val",
    "val_score",
    "empty_frames",
    "max_steps",
    "seed",
    "save_period",
    "autocast",
    "dtype",
    "workers",
)


def cmd_train_dfine(args) -> int:
    from shared.schemas import DFineTrainOptions
    from shared.settings import get_settings, pick_device

    from .dfine_job import DFineData, run_dfine_job

    for flag in ("weights", "out"):
        if not getattr(args, flag):
            raise InputError(f"--{flag} is required")
    values = {k: getattr(args, k) for k in _DFINE_FLAGS if getattr(args, k) not in (None, [])}
    values |= {
        "denoising": not args.no_denoising,
        "augment": not args.no_augment,
        "flip": not args.no_flip,
        "photometric": not args.no_photometric,
        "zoom_out": not args.no_zoom_out,
        "iou_crop": not args.no_iou_crop,
    }
    if args.multiscale is not None:
        values["multiscale"] = args.multiscale == "on"
    options = DFineTrainOptions(**values)
    data = DFineData(
        weights=Path(args.weights),
        frames=[Path(p) for p in args.frames or []],
        gt=[Path(p) for p in args.gt or []],
        coco=Path(args.coco) if args.coco else None,
        images=Path(args.images) if args.images else None,
    )
    device = pick_device(args.device or get_settings().device)
    out = Path(args.out)
    return _run_job(run_dfine_job, out, options, data, device, args)


def _dd(name: str):
    from shared.schemas import DFineTrainOptions

    return DFineTrainOptions.model_fields[name].default


def register_dfine(models: argparse._SubParsersAction) -> None:
    p = models.add_parser(
        "dfine",
        help="fine-tune D-FINE (official loss, optimizer, schedule, EMA; COCO mAP per epoch)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--frames", nargs="+", help="video file(s) or image folder(s), one per --gt")
    p.add_argument("--gt", nargs="+", help="MOT gt.txt or Label Studio JSON per --frames (class 1 player, 2 ball)")
    p.add_argument("--coco", help="COCO annotations JSON (category id = model class unless --remap-mscoco)")
    p.add_argument("--images", help="image folder of --coco")
    p.add_argument("--weights", help="initial checkpoint: official (e.g. dfine_l_obj365.pth) or a motpipe fine-tune")
    p.add_argument("--size", choices=["n", "s", "m", "l", "x"], help="D-FINE size (default: read from --weights)")
    p.add_argument(
        "--dataset",
        choices=["coco", "obj365", "crowdhuman"],
        help="the checkpoint's dataset: its class count and names (default: read from --weights)",
    )
    p.add_argument("--classes", help='new classes from source classes: player=person,ball="sports ball" (names or ids)')
    p.add_argument("--reinit-classes", action="store_true", help="new classes start from scratch instead")
    p.add_argument("--remap-mscoco", action="store_true", help="COCO category ids 1..90 -> the 80 model classes")
    p.add_argument("--out", help="job folder: job.json, checkpoint.pth, log.jsonl, tensorboard/, plots/")
    p.add_argument("--val", nargs="+", metavar="SEQ|A-B|SEQ:A-B", help="held-out sequences or frame ranges")
    p.add_argument("--val-score", type=float, help="score threshold of the per-class recall (default 0.3)")
    p.add_argument("--empty-frames", help="frames annotated as empty, e.g. 1-40,97 (otherwise unannotated = unused)")
    p.add_argument("--epochs", type=int, default=_dd("epochs"), help="epochs to train")
    p.add_argument("--lr", type=float, help="base lr (default: the size's official; every group scales with it)")
    p.add_argument("--weight-decay", type=float, help="AdamW weight decay (default: the size's official value)")
    p.add_argument("--batch-size", type=int, default=_dd("batch_size"), help="images per step and process")
    p.add_argument("--img-size", type=int, default=_dd("img_size"), help="training (and validation) image size")
    p.add_argument("--warmup-steps", type=int, default=_dd("warmup_steps"), help="linear learning-rate warm-up steps")
    p.add_argument("--ema-decay", type=float, help="EMA decay (default: the official 0.9999)")
    p.add_argument("--clip-max-norm", type=float, help="gradient clipping norm (default: the official 0.1)")
    p.add_argument("--no-aug-epochs", type=int, help="last epochs without photometric/zoom-out/IoU crop")
    p.add_argument("--multiscale", choices=["on", "off"], help="random per-batch sizes (default: on except N)")
    p.add_argument("--no-augment", action="store_true", help="no augmentation at all (resize only)")
    p.add_argument("--no-photometric", action="store_true", help="no colour distortion")
    p.add_argument("--no-zoom-out", action="store_true", help="no random zoom-out")
    p.add_argument("--no-iou-crop", action="store_true", help="no random IoU crop")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    p.add_argument("--no-denoising", action="store_true", help="no denoising queries (the embedding is kept)")
    p.add_argument("--max-steps", type=int, help="N steps are the whole plan (ends succeeded)")
    p.add_argument("--seed", type=int, default=_dd("seed"), help="seed of the data order and augmentation")
    p.add_argument("--save-period", type=int, help="also keep checkpoint<epoch>.pth every N epochs (default 12)")
    p.add_argument("--autocast", action="store_true", help="AMP: float16 + GradScaler on CUDA (bf16 on CPU)")
    p.add_argument(
        "--dtype", choices=["float32", "float64"], default=_dd("dtype"), help="float64 for parity checks only"
    )
    p.add_argument("--workers", type=int, help="image-loading processes (default: 0 on a CPU, 4 on a GPU)")
    p.add_argument("--resume", action="store_true", help="continue the job in --out from its checkpoint.pth")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: MOTPIPE_DEVICE or auto)")
    p.add_argument("--threads", type=int, help="CPU threads (default: OMP_NUM_THREADS or torch's)")
    p.add_argument("--log-json", help="JSON Lines of every step's loss terms, loss and grad_norm")
    p.set_defaults(func=cmd_train_dfine)


def cmd_sweep(args) -> int:
    from shared.settings import get_settings, pick_device

    from .grid import parse_grid
    from .sweeps import leaderboard_text, run_sweep_local, with_weights

    if args.search and not args.trials:
        raise InputError("--search optuna needs --trials N")
    grid = with_weights(parse_grid(args.grid), args.weights)
    device = pick_device(args.device or get_settings().device)
    board = run_sweep_local(Path(args.det_db), Path(args.gt), args.tracker, grid, Path(args.out),
                            Path(args.frames) if args.frames else None, args.trials if args.search else None,
                            device, console.print)  # fmt: skip
    print(leaderboard_text(board))  # the result on stdout (progress went to stderr)
    console.print(f"{len(board)} combinations -> {args.out}/leaderboard.csv")
    return 0 if any(row["state"] == "succeeded" for row in board) else 1


def register_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="track one det_db with every combination of thresholds/knobs, ranked by HOTA")
    p.add_argument("--det-db", required=True, help="the det_db the sweep tracks (its classes sidecar too)")
    p.add_argument("--gt", required=True, help="ground truth (MOT txt or Label Studio JSON)")
    p.add_argument("--frames", help="video or image folder (motrv2 needs it)")
    p.add_argument("--tracker", default="bytetrack", choices=["bytetrack", "motrv2"], help="the tracker to sweep")
    p.add_argument("--weights", nargs="+", help="motrv2 checkpoints (checkpoints x parameters is the same grid)")
    grid_help = "score_threshold=0.2,0.3 miss_tolerance=15,20,25 (any /track field or tracker knob)"
    p.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2", help=grid_help)
    p.add_argument("--search", choices=["optuna"], help="let Optuna's TPE sampler choose within the grid's ranges")
    p.add_argument("--trials", type=int, help="number of Optuna trials")
    p.add_argument("--out", required=True, help="folder: leaderboard.csv/json, plots/, one folder per combination")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: MOTPIPE_DEVICE or auto)")
    p.set_defaults(func=cmd_sweep)
