"""`motpipe eval`, `doctor`, `render`: register their subcommands on the gateway's parser."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from shared.cli import console, progress_bar
from shared.errors import InputError


def _tune_own_process() -> None:
    """For `motpipe eval` run as its own process (~0.25 s at 5000 frames x 40 objects, much of it allocating
    and freeing large arrays); none of it outlives the process:
    - before numpy loads, OpenBLAS held to one thread: its idle thread spins on the second core, which the
      group's block needs (~15 ms); evaluation multiplies no matrices;
    - glibc's allocator keeps freed memory for reuse instead of returning it and faulting fresh zeroed pages
      in again (arrays under 32 MB from the heap, nothing trimmed; ~25 ms at the median);
    - no cyclic garbage collection: the command makes no cyclic garbage worth the passes it would run."""
    import ctypes

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    gc.disable()
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def write_events(path: str, report: dict, out) -> None:
    """`--events FILE`: every FN/FP/IDSW/Frag of the CLEAR matching the evaluation made (of one class with
    `--classes C`). orjson: the json module took ~60 ms for 21,000 events, half of what events cost."""
    import orjson

    from shared.atomic import atomic_write_bytes

    atomic_write_bytes(path, orjson.dumps(report))
    counts = ", ".join(f"{kind} {n}" for kind, n in report["counts"].items())
    print(f"events ({counts}) written to {path}", file=out)


def cmd_eval(args) -> int:
    if getattr(args, "own_process", False):
        _tune_own_process()
    from services.evaluator.evaluate import evaluate_fields, in_background, parse_frame_list, report_json, sweep
    from services.evaluator.ground_truth import read_ground_truth
    from services.evaluator.table import comparison_table, report_table
    from shared.atomic import atomic_write_text
    from shared.formats.mot_txt import read_mot

    out = sys.stderr if args.json == "-" else sys.stdout  # keep stdout clean for the JSON
    classes = [int(c) for c in args.classes.split(",")] if args.classes else None
    preds = args.compare or ([args.pred] if args.pred else [])
    if not preds:
        raise InputError("give --pred PRED or --compare A B ...")
    parsed = [in_background(read_mot, p) for p in preds]  # while the ground truth is parsed
    _, gt = read_ground_truth(args.gt)
    tables = [table() for table in parsed]
    if args.sweep:
        reports = sweep(gt, tables[0], classes=classes)
        payload = "[" + ",".join(report_json(r, lines=False) for r in reports) + "]"
        print(comparison_table(reports, [f"IoU {r['iou_threshold']:g}" for r in reports], "IoU sweep"), file=out)
    elif args.compare:
        labels = args.labels.split(",") if args.labels else [Path(p).stem for p in preds]
        if len(labels) != len(preds):
            raise InputError(f"--labels has {len(labels)} names for {len(preds)} files")
        reports = [evaluate_fields(gt, table, args.iou, classes) for table in tables]
        payload = "[" + ",".join(report_json(r, lines=False) for r in reports) + "]"
        print(comparison_table(reports, labels), file=out)
    else:
        frames = parse_frame_list(args.annotated_frames) if args.annotated_frames else None
        if args.events and classes and len(classes) > 1:
            raise InputError(
                "--events scores one class at a time: give --classes C with a single class", field="classes"
            )
        reports = [evaluate_fields(gt, tables[0], args.iou, classes, args.annotated_only, frames, encode_rows=True,
                                   with_events=bool(args.events))]  # fmt: skip
        events = reports[0].pop("events", None)
        payload = report_json(reports[0])
        name = Path(preds[0]).name
        print(report_table(reports[0], name), file=out)
        for class_name, block in (reports[0]["per_class"] or {}).items():
            print("\n" + report_table({**reports[0], **block}, f"{name}: {class_name}"), file=out)
        for note in reports[0]["notes"]:
            print(f"note: {note}", file=out)
        if events is not None:
            write_events(args.events, events, out)
    if args.plots:  # matplotlib and the contract models are imported only when plots are asked for
        write_plots(args, reports, labels if args.compare else None)
    if args.json == "-":
        print(payload)
    elif args.json:
        atomic_write_text(args.json, payload)
    return 0


def write_plots(args, fields: list[dict], labels: list[str] | None) -> None:
    from services.evaluator import plots
    from shared.schemas import MetricsReport

    reports = [MetricsReport(**f) for f in fields]
    folder = Path(args.plots)
    folder.mkdir(parents=True, exist_ok=True)
    title = ", ".join(Path(p).name for p in args.compare or [args.pred]) + f" vs {Path(args.gt).name}"
    if args.sweep:
        plots.plot_sweep(reports, folder / "iou_sweep.png", title)
    elif labels:
        plots.plot_comparison(reports, labels, folder / "comparison.png", title)
    else:
        plots.write_plots(reports[0], folder, title)


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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score tracks against ground truth (MOT txt or Label Studio JSON)")
    p.add_argument("--gt", required=True, help="ground truth: MOT gt.txt or a Label Studio export")
    p.add_argument("--pred", help="the tracker output (MOT txt)")
    p.add_argument("--compare", nargs="+", help="several tracker outputs side by side")
    p.add_argument("--labels", help="comma-separated names for --compare")
    p.add_argument("--sweep", action="store_true", help="IoU thresholds 0.3 .. 0.9")
    p.add_argument("--iou", type=float, default=0.5, help="IoU a prediction needs to match")
    p.add_argument("--classes", help="comma-separated class ids (1 players, 2 ball)")
    p.add_argument("--annotated-only", action="store_true", help="score only frames that carry ground truth")
    p.add_argument("--annotated-frames", help="score only these frames, e.g. 1-300,512")
    p.add_argument("--json", help="write the metrics JSON here ('-' for stdout)")
    p.add_argument("--plots", help="folder for PNG plots")
    p.add_argument("--events", metavar="FILE", help="write every FN, FP, IDSW and Frag of the CLEAR matching (JSON)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("doctor", help="find data mistakes in a det_db, ground truth and tracker output")
    p.add_argument("--det-db", help="a det_db to check (its classes sidecar too)")
    p.add_argument("--gt", help="MOT gt.txt or Label Studio JSON")
    p.add_argument("--tracks", help="tracks (MOT txt) to check / draw")
    p.add_argument("--frames", help="video or image folder/glob (gives frame count and size)")
    p.add_argument("--sequence", help="the sequence the det_db should be keyed for")
    p.add_argument("--num-frames", type=int, help="frame count when the frames are not at hand")
    p.add_argument("--json", help="write findings as JSON here ('-' for stdout)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("render", help="overlay video of ground truth, detections and/or tracks (H.264 mp4)")
    p.add_argument("frames", help="video or image folder/glob")
    p.add_argument("--out", required=True, help="the video to write (H.264 mp4)")
    p.add_argument("--gt", help="ground truth: MOT gt.txt or a Label Studio export")
    p.add_argument("--det-db", help="a det_db to check (its classes sidecar too)")
    p.add_argument("--tracks", help="tracks (MOT txt) to check / draw")
    p.add_argument("--sequence", help="det_db sequence (when it holds several)")
    p.set_defaults(func=cmd_render)
