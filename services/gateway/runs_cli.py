"""`motpipe runs list|show|rename|tag|note|delete|reindex`: the run store of a data root, without a server (the
same rules as `GET/PATCH/DELETE /runs/{run}`: names and tags checked by `RunPatch`, no delete while a stage
runs); `reindex` rebuilds the run index from the run, sweep and job folders."""

from __future__ import annotations

import argparse
import json

from shared.errors import ConflictError
from shared.run_index import RUN_SORTS


def _limit(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 500:
        raise argparse.ArgumentTypeError("must be 1 to 500")
    return value


def _store(args):
    from shared.cli import existing_data_root
    from shared.run_store import RunStore
    from shared.settings import get_settings

    return RunStore(existing_data_root(args.data_root, "runs"), get_settings().database_url)


def _patch(store, run_id: str, **fields) -> None:
    from shared.schemas import RunPatch

    change = RunPatch(**fields).model_dump(exclude_none=True)
    store.update(run_id, lambda r: [setattr(r, k, v) for k, v in change.items()])


def cmd_runs(args) -> int:
    store = _store(args)
    if args.action == "list":
        from shared.run_index import PageQuery

        filters = tuple((k, getattr(args, k)) for k in ("tag", "state", "tracker") if getattr(args, k))
        page = store.runs_page(PageQuery(limit=args.limit, q=args.q, filters=filters, sort=args.sort))
        for run in page["runs"]:
            hota = f"HOTA {run['HOTA']:.4f}" if run["HOTA"] is not None else "HOTA -     "
            tags = f" [{', '.join(run['tags'])}]" if run["tags"] else ""
            print(
                f"{run['run']}  {run['created'][:16].replace('T', ' ')}  {run['state']:<9}  {hota}  {run['name']}{tags}"
            )
        print(f"{len(page['runs'])} of {page['total']} runs")
        return 0
    if args.action == "reindex":
        problems = []
        count = store.reindex(report=lambda path, reason: problems.append((path, reason)))
        for path, reason in problems:
            print(f"skipped {path}: {reason}")
        print(f"indexed {count} records into {store.database_url.split('@')[-1]}; {len(problems)} skipped")
        return 0
    record = store.get(args.run)
    if args.action == "show":
        print(record.model_dump_json(indent=1))
    elif args.action == "rename":
        _patch(store, args.run, name=args.value)
    elif args.action == "tag":
        tags = [t for t in record.tags if t not in args.values] if args.remove else [*record.tags, *args.values]
        _patch(store, args.run, tags=tags)
    elif args.action == "note":
        _patch(store, args.run, note=args.value)
    else:  # delete
        busy = store.busy_stage(args.run)
        if busy is not None:
            raise ConflictError(f"run {args.run}: its {busy} stage is running or queued")
        store.delete(args.run)
        print(json.dumps({"deleted": args.run}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list, show, rename, tag, annotate or delete runs of a data root (no server)")
    p.add_argument("--data-root", help="the data root (default: MOTPIPE_DATA_ROOT or ./motpipe-data)")
    actions = p.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="runs from the run index, newest first")
    listing.add_argument("--limit", type=_limit, default=50, help="at most this many (1 to 500)")
    listing.add_argument("--q", help="text in the name, note or video")
    listing.add_argument("--tag", help="only runs with this tag")
    listing.add_argument(
        "--state", choices=("pending", "queued", "running", "succeeded", "failed"), help="only in this state"
    )
    listing.add_argument("--tracker", help="only runs tracked by this tracker")
    listing.add_argument("--sort", default="-created", choices=RUN_SORTS, help="order")
    actions.add_parser("reindex", help="rebuild the run index from the folders (broken records are reported)")
    for name, text in (("show", "a run's record"), ("delete", "remove a run (not while a stage runs)")):
        actions.add_parser(name, help=text).add_argument("run", help="the run id")
    for name, text in (("rename", "the run's name"), ("note", "the run's note (replaces it)")):
        action = actions.add_parser(name, help=f"set {text}")
        action.add_argument("run", help="the run id")
        action.add_argument("value", help=text)
    tag = actions.add_parser("tag", help="add tags to a run (or --remove them)")
    tag.add_argument("run", help="the run id")
    tag.add_argument("values", nargs="+", metavar="TAG", help="tags (at most 32, 64 characters each)")
    tag.add_argument("--remove", action="store_true", help="remove these tags instead")
    p.set_defaults(func=cmd_runs)
