"""`motpipe`: the entry point. Each service registers its own commands (detect, track, eval/doctor/render,
train/sweep); the gateway keeps synth, convert, serve, worker and demo. One line of reason, exit != 0 on failure."""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

from shared.cli import console, explain_every_option
from shared.errors import ConflictError, InputError, NotFoundError


def cmd_synth(args) -> int:
    from shared.synth import render_scene

    scene = render_scene(args.out, frames=args.frames, seed=args.seed, size=(args.width, args.height), fps=args.fps)
    console.print(
        f"{scene.frames} frames {scene.size[0]}x{scene.size[1]} -> "
        f"{scene.video}, {scene.gt_txt}, {scene.gt_labelstudio}"
    )
    return 0


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
    from shared.formats.det_db import read_det_db, read_det_db_classes, resolve_sequence, write_det_db
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
        sequence = resolve_sequence(det_db, args.sequence, args.input)
        write_mot(args.output, conv.det_db_to_mot(det_db, sequence, read_det_db_classes(args.input, det_db)))
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


def cmd_serve(args) -> int:
    import uvicorn

    from services.gateway.supervisor import WorkerSupervisor
    from shared.api.auth import check_bind
    from shared.settings import get_settings

    check_bind(get_settings(), args.host)  # before anything starts: an open API on a public address

    # uvicorn ends on SIGTERM/SIGINT and then raises the signal again with the handler it found: ours turns
    # it into SystemExit so that the `finally` below stops the worker (the default SIGTERM action would end
    # serve at once and leave the worker running); also before uvicorn is up.
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, _exit_on_signal)
    supervisor = WorkerSupervisor([sys.executable, "-m", "services.gateway.cli", "worker", "--queues", "gpu,cpu"])
    try:
        supervisor.start()
        uvicorn.run("services.gateway.app:create", factory=True, host=args.host, port=args.port)
    except _Stopped:
        pass
    finally:
        for number in (signal.SIGTERM, signal.SIGINT):  # a second Ctrl-C must not cut the worker's stop short
            signal.signal(number, signal.SIG_IGN)
        supervisor.stop()
    return 0


class _Stopped(SystemExit):
    """serve was asked to stop by a signal (a clean end: exit 0)."""


def _exit_on_signal(number, _frame) -> NoReturn:
    raise _Stopped(128 + number)


def cmd_worker(args) -> int:
    from services.gateway.supervisor import exit_with_parent

    exit_with_parent()  # before the heavy imports: serve may end while this worker still starts
    concurrency = args.concurrency
    if args.gpu_slots is not None:
        from services.gateway.slots import check_slots, device_memory
        from shared.settings import get_settings

        if args.concurrency != 1:
            raise InputError("give --gpu-slots or --concurrency, not both", field="gpu_slots")
        settings = get_settings()
        print(check_slots(args.gpu_slots, device_memory(settings.device), settings.gpu_slot_gib), file=sys.stderr)
        concurrency = args.gpu_slots
    from services.gateway.worker import run_worker

    run_worker(args.queues, concurrency, args.loglevel, args.hostname)
    return 0


def cmd_demo(args) -> int:
    from services.gateway.demo import run_demo

    return run_demo(Path(args.out), args.frames, args.seed, console, args.tracker, args.weights)


# The command groups other services register, by the commands they own: a command builds only its own
# group's parsers (the train options' defaults come from the pydantic schemas, which `eval` never needs).
GROUPS = {
    "services.detector.cli": ("detect", "export"),
    "services.tracker.cli": ("track",),
    "services.evaluator.cli": ("eval", "doctor", "render"),
    "services.trainer.cli": ("train", "sweep"),
    "services.gateway.runs_cli": ("runs",),
    "services.evaluator.label_cli": ("label",),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser for `command` alone when a service owns it; every command's otherwise (help, errors)."""
    parser = argparse.ArgumentParser(prog="motpipe", description="video -> detections -> tracks -> metrics")
    sub = parser.add_subparsers(dest="command", required=True)
    owners = [module for module, commands in GROUPS.items() if command in commands]
    for module in owners or GROUPS:
        importlib.import_module(module).register(sub)
    if not owners:
        _register_gateway(sub)
    explain_every_option(parser)
    return parser


def _register_gateway(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render a synthetic beach-volleyball clip with exact ground truth")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=150, help="frames to render")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scene (same seed, same clip)")
    p.add_argument("--width", type=int, default=1280, help="frame width in pixels")
    p.add_argument("--height", type=int, default=720, help="frame height in pixels")
    p.add_argument("--fps", type=float, default=25.0, help="frames per second of the video")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("convert", help="convert between Label Studio, MOT, det_db, COCO and TrackEval layouts")
    p.add_argument("kind", choices=["ls2mot", "mot2ls", "detdb2mot", "mot2detdb", "coco2detdb", "mot2trackeval"])
    p.add_argument("input")
    p.add_argument("output", help="file, or folder for ls2mot / mot2trackeval")
    p.add_argument("--sequence", help="the sequence name (det_db keys <sequence>/img1/<frame>)")
    p.add_argument("--frame-size", help="WxH, e.g. 1920x1080")
    p.add_argument("--frame-range", help="FIRST:LAST frames to keep (ls2mot)")
    p.add_argument("--num-frames", type=int, help="frames the output covers (default: the last one present)")
    p.add_argument("--image-pattern", default="img1/{frame:06d}.jpg", help="mot2ls image path per frame")
    p.add_argument("--as-annotations", action="store_true", help="mot2ls: annotations instead of predictions")
    p.add_argument(
        "--score-threshold", type=float, default=0.0, help="coco2detdb: keep detections scoring at least this"
    )
    p.add_argument("--tracks", help="mot2trackeval: the tracker output")
    p.add_argument(
        "--tracker",
        default="motpipe",
        help="mot2trackeval: the tracker name in the TrackEval layout; demo: the tracker to run",
    )
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("serve", help="API gateway and one worker in one command (no broker server needed)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (not loopback: needs MOTPIPE_API_TOKEN or MOTPIPE_AUTH=off)",
    )
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="a Celery worker for the gpu and/or cpu queues")
    p.add_argument("--queues", default="gpu,cpu", help="queues to take tasks from")
    p.add_argument("--concurrency", type=int, default=1, help="tasks at once (processes)")
    p.add_argument("--gpu-slots", type=int, metavar="K",
                   help="K tasks at once on the device, each a process with its own model; refused unless K x "
                        "MOTPIPE_GPU_SLOT_GIB fits in the device's free memory")  # fmt: skip
    p.add_argument("--loglevel", default="INFO", help="Celery log level")
    p.add_argument("--hostname", help="worker name (default: celery@<host>)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("demo", help="synthetic clip -> motion detector -> det_db -> bytetrack -> tracks")
    p.add_argument("--out", default="demo-output", help="folder for the demo outputs")
    p.add_argument("--frames", type=int, default=150, help="frames to render")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scene (same seed, same clip)")
    p.add_argument(
        "--tracker",
        default="bytetrack",
        choices=["bytetrack", "motrv2"],
        help="mot2trackeval: the tracker name in the TrackEval layout; demo: the tracker to run",
    )
    p.add_argument("--weights", help="MOTRv2 checkpoint (with --tracker motrv2)")
    p.set_defaults(func=cmd_demo)


# commands whose own process ends without the interpreter's teardown (`_leave_now`)
QUICK_EXIT = ("detect", "track")


def _leave_now(code: int) -> NoReturn:
    """End the process without tearing the interpreter down: with torch loaded, finalising every module's
    objects one by one takes ~0.9 s and writes nothing (`python -c "import torch"` 3.1 s, 2.2 s when it
    ends with os._exit; a `motpipe detect` of 40 frames spends 1 s of its 7 s there). The command's files
    are written and closed by then; exit handlers (multiprocessing, logging, temporary folders) still run."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    own_process = argv is None  # the `motpipe` program itself, not a caller in this process (tests, scripts)
    argv = sys.argv[1:] if own_process else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    args.own_process = own_process
    code = _run(args)
    if own_process and args.command in QUICK_EXIT:
        _leave_now(code)
    return code


def _say(line: str) -> None:
    """One line on stderr, unwrapped whatever the terminal's width (a reason is read whole, or grepped)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _run(args) -> int:
    try:
        return args.func(args)
    except (InputError, NotFoundError, ConflictError) as exc:  # what the user asked for cannot be done: say why
        _say(f"motpipe {args.command}: error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        pydantic = sys.modules.get("pydantic")  # not imported: no schema was used, none can have failed
        if pydantic is not None and isinstance(exc, pydantic.ValidationError):  # an option out of range
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "option"
            console.print(
                f"motpipe {args.command}: error: {where}: {first['msg']}", markup=False, highlight=False, soft_wrap=True
            )
            return 2
        if os.environ.get("MOTPIPE_DEBUG"):  # one line, not a traceback; MOTPIPE_DEBUG=1 shows it
            raise
        console.print(
            f"motpipe {args.command}: failed: {type(exc).__name__}: {exc}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
