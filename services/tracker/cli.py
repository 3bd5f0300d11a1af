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
    from services.tracker.engine import build_tracker, run_tracking, threshold_notes
    from shared.formats.det_db import read_det_db, read_det_db_classes
    from shared.formats.mot_txt import write_mot
    from shared.frames import open_frames
    from shared.schemas import TrackOptions
    from shared.settings import get_settings, pick_device

    det_db = read_det_db(args.det_db)
    classes = read_det_db_classes(args.det_db, det_db)  # the sidecar beside it, when there is one
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
        tracks = run_tracking(det_db, options, args.sequence, None, update, str(args.det_db), frames, tracker,
                              classes)  # fmt: skip
    write_mot(args.out, tracks)
    for note in threshold_notes(det_db, options, tracks, tracker):
        console.print(note, style="bold yellow" if note.startswith("warning") else None, markup=False)
    kinds = f", classes {sorted(set(tracks.cls.tolist()))}" if classes is not None else ""
    console.print(f"{len(tracks)} track boxes, {len(set(tracks.id.tolist()))} ids{kinds} -> {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from shared.schemas import MOTRV2_SCORE_THRESHOLD, tracker_knobs

    knobs = "\n".join(
        f"  {tracker} --option {name}=V   {text} (default {default})"
        for tracker in ("bytetrack", "motrv2")
        for name, default, text in tracker_knobs(tracker)
    )
    p = sub.add_parser(
        "track",
        help="turn a det_db into MOT tracks",
        description="Track a det_db's boxes (and their classes, from the det_db's .classes.json sidecar when it "
        "exists) into MOT lines; says how many boxes reach the tracker's thresholds.",
        epilog="each tracker's own knobs:\n" + knobs,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--det-db", required=True, help="the det_db JSON (its classes sidecar is read beside it)")
    p.add_argument("--frames", help="video or image folder/glob; motrv2 needs it (default: frames from the det_db)")
    p.add_argument("--tracker", default="bytetrack", choices=["bytetrack", "motrv2"], help="(default bytetrack)")
    p.add_argument("--weights", help="motrv2: the checkpoint (required with motrv2)")
    p.add_argument("--sequence", help="the det_db's sequence to track (default: its only one)")
    threshold = "bytetrack: score a detection needs to start a track (default 0.5); motrv2: score a track is shown"
    p.add_argument("--score-threshold", type=float, help=f"{threshold} from (default {MOTRV2_SCORE_THRESHOLD})")
    p.add_argument("--update-score-threshold", type=float, help="motrv2: QIM update threshold (default 0.5)")
    p.add_argument("--miss-tolerance", type=int, help="motrv2: frames a track may be missed (default 20)")
    p.add_argument("--area-threshold", type=float, help="motrv2: minimum box area in pixels (default 100)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: MOTPIPE_DEVICE or auto)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a tracker knob (repeatable; listed below)")  # fmt: skip
    p.add_argument("--out", required=True, help="the MOT txt to write")
    p.set_defaults(func=cmd_track)
