"""`motpipe track`: registers its subcommand on the gateway's parser."""

from __future__ import annotations

import argparse

from shared.cli import console, parse_value, progress_bar
from shared.errors import InputError


def _parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"--option needs KEY=VALUE, got {pair!r}")
        options[key] = parse_value(value)
    return options


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


def register(sub: argparse._SubParsersAction) -> None:
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
