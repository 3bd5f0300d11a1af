"""`motpipe label pick`: the frames of a run worth annotating next, with the reason for each, read from a data
root without a server (`picking.py` decides; `store.run_picks` reads the run). The first step of the
annotation loop; pushing the picks to Label Studio and pulling the annotations back build on it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_label(args) -> int:
    from services.evaluator.store import run_picks
    from shared.run_store import RunStore
    from shared.settings import get_settings

    settings = get_settings()
    root = Path(args.data_root) if args.data_root else settings.data_root
    if not root.is_dir():
        raise SystemExit(f"motpipe label: no data root at {root.resolve()} (give --data-root or set MOTPIPE_DATA_ROOT)")
    picks = run_picks(RunStore(root, settings.database_url), args.run, args.pick, args.frames, args.min_gap)
    if args.json:
        json.dump([{"frame": p.frame, "reason": p.reason} for p in picks], sys.stdout, indent=1)
        print()
        return 0
    for pick in picks:
        print(f"{pick.frame:>7}  {pick.reason}")
    short = f" (the clip and --min-gap {args.min_gap} allow no more)" if len(picks) < args.frames else ""
    print(f"{len(picks)} frames picked by {args.pick}{short}")
    return 0


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10000:
        raise argparse.ArgumentTypeError("must be 1 to 10000")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="the annotation loop: which frames of a run to annotate next")
    actions = p.add_subparsers(dest="action", required=True)
    pick = actions.add_parser("pick", help="the frames worth a human's time, each with its reason")
    pick.add_argument("--run", required=True, help="the run (its det_db, tracks and ground truth)")
    pick.add_argument("--data-root", help="default: MOTPIPE_DATA_ROOT")
    pick.add_argument("--frames", type=_count, default=50, help="how many frames to pick")
    pick.add_argument("--pick", choices=["uncertain", "disagree", "errors", "uniform"], default="uncertain",
                      help="uncertain/disagree/uniform: frames without ground truth; errors: annotated frames "
                      "where the tracks are wrong")  # fmt: skip
    pick.add_argument("--min-gap", type=int, default=15, help="frames between two picks at least")
    pick.add_argument("--json", action="store_true", help="print the picks as JSON")
    pick.set_defaults(func=cmd_label)
