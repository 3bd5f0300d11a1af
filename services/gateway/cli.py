"""`motpipe` commands (train registers its own). One line of reason and exit != 0 on failure."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from shared.errors import InputError

console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator:
    """A callback `(done, total)` that drives a rich progress bar."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"--option needs KEY=VALUE, got {pair!r}")
        for cast in (int, float):
            try:
                options[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            options[key] = {"true": True, "false": False}.get(value.lower(), value)
    return options


def cmd_detect(args) -> int:
    from services.detector.engine import run_detection, write_detections
    from services.detector.registry import build_detector
    from shared.frames import open_frames
    from shared.schemas import DetectOptions
    from shared.settings import get_settings, pick_device

    options = DetectOptions(
        detector=args.detector,
        weights=args.weights,
        size=args.size,
        dataset=args.dataset,
        score_threshold=args.score_threshold,
        classes=args.classes,
        roi=args.roi,
        min_area=args.min_area,
        sequence=args.sequence,
    )
    source = open_frames(args.input)
    detector = build_detector(options, pick_device(args.device or get_settings().device))
    with progress_bar("detect") as update:
        result = run_detection(source, detector, options, update)
    write_detections(result, args.out, args.format)
    console.print(
        f"{result.info.detections} detections in {result.info.keys_with_detections}/{result.info.frames} frames "
        f"-> {args.out}"
    )
    return 0


def cmd_track(args) -> int:
    from services.tracker.engine import build_tracker, run_tracking
    from shared.formats.det_db import read_det_db
    from shared.formats.mot_txt import write_mot
    from shared.frames import open_frames
    from shared.schemas import TrackOptions
    from shared.settings import get_settings, pick_device

    det_db = read_det_db(args.det_db)
    frames = open_frames(args.frames) if args.frames else None
    extra = _parse_options(args.option)
    for name in ("update_score_threshold", "miss_tolerance", "area_threshold"):
        if getattr(args, name) is not None:
            extra[name] = getattr(args, name)
    options = TrackOptions(
        tracker=args.tracker, weights=args.weights, score_threshold=args.score_threshold, options=extra
    )
    if options.tracker == "motrv2" and not options.weights:
        raise InputError("motrv2 needs --weights CHECKPOINT")
    tracker = build_tracker(options, pick_device(args.device or get_settings().device))
    with progress_bar("track") as update:
        tracks = run_tracking(det_db, options, args.sequence, None, update, str(args.det_db), frames, tracker)
    write_mot(args.out, tracks)
    console.print(f"{len(tracks)} track boxes, {len(set(tracks.id.tolist()))} ids -> {args.out}")
    return 0


def cmd_synth(args) -> int:
    from shared.synth import render_scene

    scene = render_scene(args.out, frames=args.frames, seed=args.seed, size=(args.width, args.height), fps=args.fps)
    console.print(
        f"{scene.frames} frames {scene.size[0]}x{scene.size[1]} -> "
        f"{scene.video}, {scene.gt_txt}, {scene.gt_labelstudio}"
    )
    return 0


def cmd_eval(args) -> int:
    from rich.console import Console

    from services.evaluator.evaluate import evaluate, parse_frame_list, sweep
    from services.evaluator.ground_truth import read_ground_truth
    from services.evaluator.table import comparison_table, report_table

    if args.plots:  # matplotlib is imported only when plots are asked for
        from services.evaluator.plots import plot_comparison, plot_sweep, write_plots
    from shared.atomic import atomic_write_text
    from shared.formats.mot_txt import read_mot

    out = Console(stderr=args.json == "-")  # keep stdout clean for the JSON
    classes = [int(c) for c in args.classes.split(",")] if args.classes else None
    _, gt = read_ground_truth(args.gt)
    preds = args.compare or ([args.pred] if args.pred else [])
    if not preds:
        raise InputError("give --pred PRED or --compare A B ...")
    if args.sweep:
        reports = sweep(gt, read_mot(preds[0]), classes=classes)
        payload = "[" + ",".join(r.model_dump_json() for r in reports) + "]"
        out.print(comparison_table(reports, [f"IoU {r.iou_threshold:g}" for r in reports], "IoU sweep"))
        if args.plots:
            Path(args.plots).mkdir(parents=True, exist_ok=True)
            plot_sweep(reports, Path(args.plots) / "iou_sweep.png")
    elif args.compare:
        labels = args.labels.split(",") if args.labels else [Path(p).stem for p in preds]
        if len(labels) != len(preds):
            raise InputError(f"--labels has {len(labels)} names for {len(preds)} files")
        reports = [evaluate(gt, read_mot(p), args.iou, classes) for p in preds]
        payload = "[" + ",".join(r.model_dump_json() for r in reports) + "]"
        out.print(comparison_table(reports, labels))
        if args.plots:
            Path(args.plots).mkdir(parents=True, exist_ok=True)
            plot_comparison(reports, labels, Path(args.plots) / "comparison.png")
    else:
        frames = parse_frame_list(args.annotated_frames) if args.annotated_frames else None
        report = evaluate(gt, read_mot(preds[0]), args.iou, classes, args.annotated_only, frames)
        payload = report.model_dump_json(indent=1)
        out.print(report_table(report, Path(preds[0]).name))
        for name, block in (report.per_class or {}).items():
            out.print(report_table(report.model_copy(update=block), f"{Path(preds[0]).name}: {name}"))
        for note in report.notes:
            out.print(f"note: {note}")
        if args.plots:
            write_plots(report, args.plots)
    if args.json == "-":
        print(payload)
    elif args.json:
        atomic_write_text(args.json, payload)
    return 0


def cmd_doctor(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from services.evaluator.doctor import run_doctor
    from shared.frames import open_frames

    num_frames, frame_size = args.num_frames, None
    if args.frames:
        source = open_frames(args.frames)
        num_frames, frame_size = source.count, source.size
    if not (args.det_db or args.gt or args.tracks):
        raise InputError("give at least one of --det-db, --gt, --tracks")
    report = run_doctor(args.det_db, args.gt, args.tracks, args.sequence, num_frames, frame_size)
    if args.json == "-":
        print(report.model_dump_json(indent=1))
    else:
        if args.json:
            from shared.atomic import atomic_write_text

            atomic_write_text(args.json, report.model_dump_json(indent=1))
        table = Table(title=f"motpipe doctor: {len(report.findings)} finding(s)")
        for column in ("severity", "code", "message", "fix"):
            table.add_column(column)
        for f in report.findings:
            colour = {"error": "red", "warning": "yellow"}.get(f.severity, "blue")
            table.add_row(f"[{colour}]{f.severity}[/]", f.code, f.message, f.fix)
        Console().print(table if report.findings else "no findings: the inputs look consistent")
    return 1 if report.has_errors else 0


def _size(value: str | None) -> tuple[int, int] | None:
    if not value:
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise InputError(f"frame size must look like 1920x1080, got {value!r}") from None
    return width, height


def cmd_convert(args) -> int:
    from shared.formats import conversions as conv
    from shared.formats.det_db import read_det_db, resolve_sequence, write_det_db
    from shared.formats.labelstudio import read_labelstudio
    from shared.formats.mot_txt import read_mot, write_mot

    size = _size(args.frame_size)
    if args.kind == "ls2mot":
        frame_range = tuple(int(v) for v in args.frame_range.split(":")) if args.frame_range else None
        out = conv.labelstudio_to_mot(read_labelstudio(args.input, frame_size=size), args.output,
                                      args.sequence or Path(args.input).stem, frame_range, size)  # fmt: skip
    elif args.kind == "mot2ls":
        if size is None:
            raise InputError("mot2ls needs --frame-size WxH (Label Studio stores percentages)")
        conv.mot_to_labelstudio(read_mot(args.input), args.output, size, args.image_pattern,
                                as_predictions=not args.as_annotations)  # fmt: skip
        out = args.output
    elif args.kind == "detdb2mot":
        det_db = read_det_db(args.input)
        write_mot(args.output, conv.det_db_to_mot(det_db, resolve_sequence(det_db, args.sequence, args.input)))
        out = args.output
    elif args.kind == "mot2detdb":
        write_det_db(args.output, conv.mot_to_det_db(read_mot(args.input), _need(args.sequence), args.num_frames))
        out = args.output
    elif args.kind == "coco2detdb":
        db = conv.coco_to_det_db(args.input, _need(args.sequence), args.num_frames, args.score_threshold)
        write_det_db(args.output, db)
        out = args.output
    else:  # mot2trackeval
        if not args.tracks:
            raise InputError("mot2trackeval needs --tracks TRACKS.txt (INPUT is the ground truth)")
        out = conv.mot_to_trackeval(read_mot(args.input), read_mot(args.tracks), args.output,
                                    _need(args.sequence), args.tracker, num_frames=args.num_frames,
                                    frame_size=size)  # fmt: skip
    console.print(f"{args.kind}: {args.input} -> {out}")
    return 0


def _need(sequence: str | None) -> str:
    if not sequence:
        raise InputError("this conversion needs --sequence NAME")
    return sequence


def cmd_render(args) -> int:
    from services.evaluator.ground_truth import read_ground_truth
    from services.evaluator.overlay import render_overlay
    from shared.formats.conversions import det_db_to_mot
    from shared.formats.det_db import read_det_db, resolve_sequence
    from shared.formats.mot_txt import read_mot

    if not (args.gt or args.det_db or args.tracks):
        raise InputError("give at least one layer: --gt, --det-db or --tracks")
    gt = read_ground_truth(args.gt)[1] if args.gt else None
    dets = None
    if args.det_db:
        det_db = read_det_db(args.det_db)
        dets = det_db_to_mot(det_db, resolve_sequence(det_db, args.sequence, args.det_db))
    tracks = read_mot(args.tracks) if args.tracks else None
    with progress_bar("render") as update:
        count = render_overlay(args.frames, args.out, gt, dets, tracks, update)
    console.print(f"{count} frames -> {args.out}")
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    from services.gateway.supervisor import WorkerSupervisor

    supervisor = WorkerSupervisor([sys.executable, "-m", "services.gateway.cli", "worker", "--queues", "gpu,cpu"])
    supervisor.start()
    try:
        uvicorn.run("services.gateway.app:create", factory=True, host=args.host, port=args.port)
    finally:
        supervisor.stop()
    return 0


def cmd_worker(args) -> int:
    from services.gateway.worker import run_worker

    run_worker(args.queues, args.concurrency, args.loglevel, args.hostname)
    return 0


def cmd_demo(args) -> int:
    from services.gateway.demo import run_demo

    return run_demo(Path(args.out), args.frames, args.seed, console, args.tracker, args.weights)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motpipe", description="video -> detections -> tracks -> metrics")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("detect", help="detect objects in a video, image folder/glob or image")
    p.add_argument("input")
    p.add_argument("--detector", default="motion")
    p.add_argument("--weights")
    p.add_argument("--size")
    p.add_argument("--dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--format", choices=["detdb", "mot", "json"], default="detdb")
    p.add_argument("--sequence", default="video", help="det_db keys are SEQUENCE/img1/NNNNNN")
    p.add_argument("--score-threshold", type=float, default=0.3)
    p.add_argument("--classes", help="comma-separated class ids or names")
    p.add_argument("--roi", help="x1,y1,x2,y2 or a JSON polygon [[x,y],...]")
    p.add_argument("--min-area", type=float, default=0.0)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: MOTPIPE_DEVICE or auto)")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("track", help="turn a det_db into MOT tracks")
    p.add_argument("--det-db", required=True)
    p.add_argument("--frames", help="video or image folder/glob (gives the frame count)")
    p.add_argument("--tracker", default="bytetrack")
    p.add_argument("--weights")
    p.add_argument("--sequence")
    p.add_argument("--score-threshold", type=float)
    p.add_argument("--update-score-threshold", type=float, help="motrv2: QIM update threshold (default 0.5)")
    p.add_argument("--miss-tolerance", type=int, help="motrv2: frames a track may be missed (default 20)")
    p.add_argument("--area-threshold", type=float, help="motrv2: minimum box area in pixels (default 100)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: MOTPIPE_DEVICE or auto)")
    p.add_argument("--option", action="append", default=[], help="tracker option KEY=VALUE (repeatable)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_track)

    p = sub.add_parser("synth", help="render a synthetic beach-volleyball clip with exact ground truth")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=float, default=25.0)
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("eval", help="score tracks against ground truth (MOT txt or Label Studio JSON)")
    p.add_argument("--gt", required=True)
    p.add_argument("--pred")
    p.add_argument("--compare", nargs="+", help="several tracker outputs side by side")
    p.add_argument("--labels", help="comma-separated names for --compare")
    p.add_argument("--sweep", action="store_true", help="IoU thresholds 0.3 .. 0.9")
    p.add_argument("--iou", type=float, default=0.5)
    p.add_argument("--classes", help="comma-separated class ids (1 players, 2 ball)")
    p.add_argument("--annotated-only", action="store_true", help="score only frames that carry ground truth")
    p.add_argument("--annotated-frames", help="score only these frames, e.g. 1-300,512")
    p.add_argument("--json", help="write the metrics JSON here ('-' for stdout)")
    p.add_argument("--plots", help="folder for PNG plots")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("doctor", help="find data mistakes in a det_db, ground truth and tracker output")
    p.add_argument("--det-db")
    p.add_argument("--gt", help="MOT gt.txt or Label Studio JSON")
    p.add_argument("--tracks")
    p.add_argument("--frames", help="video or image folder/glob (gives frame count and size)")
    p.add_argument("--sequence", help="the sequence the det_db should be keyed for")
    p.add_argument("--num-frames", type=int, help="frame count when the frames are not at hand")
    p.add_argument("--json", help="write findings as JSON here ('-' for stdout)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("convert", help="convert between Label Studio, MOT, det_db, COCO and TrackEval layouts")
    p.add_argument("kind", choices=["ls2mot", "mot2ls", "detdb2mot", "mot2detdb", "coco2detdb", "mot2trackeval"])
    p.add_argument("input")
    p.add_argument("output", help="file, or folder for ls2mot / mot2trackeval")
    p.add_argument("--sequence")
    p.add_argument("--frame-size", help="WxH, e.g. 1920x1080")
    p.add_argument("--frame-range", help="FIRST:LAST frames to keep (ls2mot)")
    p.add_argument("--num-frames", type=int)
    p.add_argument("--image-pattern", default="img1/{frame:06d}.jpg", help="mot2ls image path per frame")
    p.add_argument("--as-annotations", action="store_true", help="mot2ls: annotations instead of predictions")
    p.add_argument("--score-threshold", type=float, default=0.0)
    p.add_argument("--tracks", help="mot2trackeval: the tracker output")
    p.add_argument("--tracker", default="motpipe")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("render", help="overlay video of ground truth, detections and/or tracks (H.264 mp4)")
    p.add_argument("frames", help="video or image folder/glob")
    p.add_argument("--out", required=True)
    p.add_argument("--gt")
    p.add_argument("--det-db")
    p.add_argument("--tracks")
    p.add_argument("--sequence", help="det_db sequence (when it holds several)")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("serve", help="API gateway and one worker in one command (no broker server needed)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="a Celery worker for the gpu and/or cpu queues")
    p.add_argument("--queues", default="gpu,cpu")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--loglevel", default="INFO")
    p.add_argument("--hostname")
    p.set_defaults(func=cmd_worker)

    from services.trainer.cli import register as register_train
    from services.trainer.cli import register_sweep

    register_train(sub, console)
    register_sweep(sub, console)

    p = sub.add_parser("demo", help="synthetic clip -> motion detector -> det_db -> bytetrack -> tracks")
    p.add_argument("--out", default="demo-output")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tracker", default="bytetrack", choices=["bytetrack", "motrv2"])
    p.add_argument("--weights", help="MOTRv2 checkpoint (with --tracker motrv2)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        console.print(f"motpipe {args.command}: error: {exc}", markup=False, highlight=False)
        return 2
    except ValidationError as exc:  # an option out of range, named by the schema
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "option"
        console.print(f"motpipe {args.command}: error: {where}: {first['msg']}", markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, not a traceback; MOTPIPE_DEBUG=1 shows it
        if os.environ.get("MOTPIPE_DEBUG"):
            raise
        console.print(f"motpipe {args.command}: failed: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
