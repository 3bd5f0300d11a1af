"""`motpipe label pick|push|pull`: the annotation loop on a data root, without a server. `pick` prints the
frames of a run worth annotating next with the reason for each (`picking.py`); `push` sends them to the
group's Label Studio (`MOTPIPE_LABEL_STUDIO_URL`, `MOTPIPE_LABEL_STUDIO_TOKEN`) with the run's tracks as
predictions; `pull` merges the finished annotations into the run's ground truth (`label_loop.py`). Label
Studio's failures are one line on stderr and exit 2; nothing in the run changes."""

from __future__ import annotations

import argparse
import json
import sys


def cmd_label(args) -> int:
    from services.evaluator.label_studio import LabelStudio, LabelStudioError
    from services.evaluator.store import run_picks
    from shared.cli import existing_data_root, progress_bar
    from shared.run_store import RunStore
    from shared.settings import get_settings

    settings = get_settings()
    store = RunStore(existing_data_root(args.data_root, "label"), settings.database_url)
    if args.action in ("push", "pull"):
        from services.evaluator import label_loop

        store.get(args.run)  # an unknown run is said before Label Studio is asked anything
        try:
            studio = LabelStudio(settings.label_studio_url, settings.label_studio_token)
            try:
                if args.action == "pull":
                    return _said_pull(label_loop.pull(store, args.run, studio, args.project), args.run)
                picks = run_picks(store, args.run, args.pick, args.frames, args.min_gap)
                with progress_bar("frames", from_first_update=True) as update:
                    done = label_loop.push(store, args.run, studio, picks, args.project, update)
            finally:
                studio.close()
        except LabelStudioError as exc:
            print(f"motpipe label {args.action}: error: {exc}", file=sys.stderr)
            return 2
        print(f"project {done['project']}: {done['tasks']} tasks ({done['added']} added, {done['already']} "
              "already there)")  # fmt: skip
        return 0
    picks = run_picks(store, args.run, args.pick, args.frames, args.min_gap)
    if args.json:
        json.dump([{"frame": p.frame, "reason": p.reason} for p in picks], sys.stdout, indent=1)
        print()
        return 0
    for pick in picks:
        print(f"{pick.frame:>7}  {pick.reason}")
    short = f" (the clip and --min-gap {args.min_gap} allow no more)" if len(picks) < args.frames else ""
    print(f"{len(picks)} frames picked by {args.pick}{short}")
    return 0


def _said_pull(summary: dict, run: str) -> int:
    if not summary["changed"]:
        print(f"project {summary['project']}: nothing new for run {run} (no finished annotation, or pulled "
              "already); nothing changed")  # fmt: skip
        return 0
    boxes = ", ".join(f"{n} {name}" for name, n in sorted(summary["boxes"].items())) or "no boxes"
    print(f"project {summary['project']}: {summary['frames_added']} frames added, {summary['frames_replaced']} "
          f"replaced ({boxes}) in the ground truth of run {run}")  # fmt: skip
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
    push = actions.add_parser("push", help="picked frames into a Label Studio project, the tracks as predictions")
    push.add_argument("--run", required=True, help="the run whose frames and tracks go to Label Studio")
    push.add_argument("--data-root", help="default: MOTPIPE_DATA_ROOT")
    push.add_argument("--frames", type=_count, default=50, help="how many frames to pick")
    push.add_argument("--pick", choices=["uncertain", "disagree", "errors", "uniform"], default="uncertain",
                      help="how to pick them (see `motpipe label pick --help`)")  # fmt: skip
    push.add_argument("--min-gap", type=int, default=15, help="frames between two picks at least")
    push.add_argument("--project", help="project id or title (default: 'motpipe <run name>'; made when new)")
    push.set_defaults(func=cmd_label)
    pull = actions.add_parser("pull", help="a project's finished annotations into the run's ground truth")
    pull.add_argument("--run", required=True, help="the run whose ground truth receives the annotations")
    pull.add_argument("--data-root", help="default: MOTPIPE_DATA_ROOT")
    pull.add_argument("--project", required=True, help="project id or title")
    pull.set_defaults(func=cmd_label)
