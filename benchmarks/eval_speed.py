"""End-to-end evaluation speed, motpipe vs TrackEval (the reference it names), single process.

For each size a synthetic GT/tracker pair is written as MOT txt; both sides then parse the
files and compute HOTA + CLEAR + Identity (+ Count). TrackEval runs through its own
`Evaluator` with `MotChallenge2DBox` (no preprocessing, no output files), as its users run it.
motpipe runs with its compiled kernels (the default when they were built) and, for the
record, with the numpy fallback that runs where no C compiler was available.

    .venv/bin/python benchmarks/eval_speed.py [--sizes 5000x40 20000x20] [--repeat 1]
    .venv/bin/python benchmarks/eval_speed.py --whole-process [--repeat 3]

`--whole-process` times what a user feels, each as a fresh process on the same files: `motpipe eval --gt
--pred --json` (imports, parsing, TrackEval block, the group's framewise block, JSON), TrackEval's
Evaluator in a `python -c` of its own, and motrics (Rust, `pip install motrics`) when it is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from trackeval_run import run_trackeval

from services.evaluator.metrics import trackeval_metrics
from services.evaluator.metrics.hota import ARRAYS
from shared.formats.mot_txt import MotTable, read_mot, write_mot


def make_pair(frames: int, objects: int, seed: int = 0) -> tuple[MotTable, MotTable]:
    """Objects on random walks; the tracker misses 5%, jitters boxes, swaps ids now and then, adds FPs."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 1800, (objects, 2))
    size = rng.uniform(20, 120, (objects, 2))
    gt_rows, pred_rows = [], []
    pred_id = np.arange(objects) + 1
    next_id = objects + 1
    for f in range(1, frames + 1):
        pos += rng.normal(0, 3, pos.shape)
        keep = rng.random(objects) > 0.05
        switch = rng.random(objects) < 0.002
        pred_id[switch] = np.arange(next_id, next_id + switch.sum())
        next_id += int(switch.sum())
        for i in range(objects):
            gt_rows.append((f, i + 1, *pos[i], *size[i], 1, 1, 1, -1))
            if keep[i]:
                jitter = rng.normal(0, 2, 4)
                pred_rows.append((f, pred_id[i], *(pos[i] + jitter[:2]), *(size[i] + jitter[2:]), 0.9, 1, -1, -1))
        if rng.random() < 0.3:
            pred_rows.append((f, 900000 + f, *rng.uniform(0, 1800, 2), 50, 50, 0.5, 1, -1, -1))
    return MotTable.from_matrix(np.array(gt_rows)), MotTable.from_matrix(np.array(pred_rows))


def run_motpipe(gt_path: Path, pred_path: Path, backend: str) -> dict:
    return trackeval_metrics(read_mot(gt_path), read_mot(pred_path), backend=backend)


def layout_trackeval(root: Path, gt: MotTable, pred: MotTable, frames: int) -> dict:
    seq, bench = "SEQ-01", "BENCH"
    seq_dir = root / "gt" / f"{bench}-train" / seq
    (seq_dir / "gt").mkdir(parents=True)
    write_mot(seq_dir / "gt" / "gt.txt", gt, columns=9)
    (seq_dir / "seqinfo.ini").write_text(f"[Sequence]\nname={seq}\nseqLength={frames}\n")
    seqmap = root / "seqmap.txt"
    seqmap.write_text(f"name\n{seq}\n")
    data = root / "trackers" / f"{bench}-train" / "motpipe" / "data"
    data.mkdir(parents=True)
    write_mot(data / f"{seq}.txt", pred)
    return {
        "GT_FOLDER": str(root / "gt"),
        "TRACKERS_FOLDER": str(root / "trackers"),
        "BENCHMARK": bench,
        "SPLIT_TO_EVAL": "train",
        "SEQMAP_FILE": str(seqmap),
        "TRACKERS_TO_EVAL": ["motpipe"],
        "DO_PREPROC": False,
        "PRINT_CONFIG": False,
    }


def identical(ours: dict, theirs: dict) -> bool:
    """Every CLEAR and Identity value and every per-alpha HOTA array equal, bit for bit."""
    for block in ("CLEAR", "Identity"):
        if any(name in ours and ours[name] != value for name, value in theirs[block].items()):
            return False
    return all(ours[f"{name}_alpha"] == list(theirs["HOTA"][name]) for name in ARRAYS)


@contextlib.contextmanager
def bench_files(size: str):
    """A generated pair for `FRAMESxOBJECTS` laid out as TrackEval reads it: (folder, gt, pred, TrackEval
    config, gt path, prediction path)."""
    frames, objects = (int(v) for v in size.split("x"))
    gt, pred = make_pair(frames, objects)
    with tempfile.TemporaryDirectory() as tmp:
        config = layout_trackeval(Path(tmp), gt, pred, frames)
        gt_path = Path(config["GT_FOLDER"]) / "BENCH-train" / "SEQ-01" / "gt" / "gt.txt"
        pred_path = Path(config["TRACKERS_FOLDER"]) / "BENCH-train" / "motpipe" / "data" / "SEQ-01.txt"
        yield tmp, gt, pred, config, gt_path, pred_path


def timed(fn, repeat: int):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


# TrackEval's process imports TrackEval and nothing of ours (`trackeval_run` holds only the Evaluator call)
TRACKEVAL_PROCESS = """
import json, sys
sys.path.insert(0, {bench!r})
from trackeval_run import run_trackeval
print(run_trackeval(json.loads(sys.argv[1]))["HOTA"]["HOTA"].mean())
"""
MOTRICS_PROCESS = """
import sys, motrics
gt, pred = motrics.load_motchallenge(sys.argv[1]), motrics.load_motchallenge(sys.argv[2])
ids, boxes, pids, pboxes = motrics.align_frames(gt, pred)
print(motrics.evaluate(motrics.Frames(ids, boxes), motrics.Frames(pids, pboxes), iou_threshold=0.5).hota.hota)
"""


def timed_process(command: list[str], repeat: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        out = done.stdout
    return best, out


def whole_process(sizes: list[str], repeat: int) -> None:
    try:
        import motrics  # noqa: F401

        has_motrics = True
    except ImportError:
        has_motrics = False
    table = Table(title=f"whole processes on the same files (best of {repeat}): `motpipe eval --json` vs references")
    for column in ("frames x objects", "motpipe s", "TrackEval s", "ratio", "motrics s", "vs motrics", "same HOTA"):
        table.add_column(column, justify="right")
    motpipe = [str(Path(sys.executable).parent / "motpipe"), "eval"]
    for size in sizes:
        with bench_files(size) as (tmp, gt, pred, config, gt_path, pred_path):
            out = Path(tmp) / "metrics.json"
            ours_s, _ = timed_process([*motpipe, "--gt", str(gt_path), "--pred", str(pred_path), "--json", str(out)],
                                      repeat)  # fmt: skip
            ours = json.loads(out.read_text())["trackeval"]["HOTA"]
            script = TRACKEVAL_PROCESS.format(bench=str(Path(__file__).parent))
            theirs_s, theirs = timed_process([sys.executable, "-c", script, json.dumps(config)], repeat)
            row = [size, f"{ours_s:.3f}", f"{theirs_s:.2f}", f"{theirs_s / ours_s:.1f}x"]
            same = abs(float(theirs) - ours) < 1e-12
            if has_motrics:
                rust_s, rust = timed_process([sys.executable, "-c", MOTRICS_PROCESS, str(gt_path), str(pred_path)],
                                             repeat)  # fmt: skip
                row += [f"{rust_s:.3f}", f"{rust_s / ours_s:.1f}x"]
                same = same and abs(float(rust) - ours) < 1e-4
            else:
                row += ["not installed", ""]
            table.add_row(*row, str(same))
    Console(width=140).print(table)


def events_cost(sizes: list[str], repeat: int) -> None:
    """`motpipe eval --json` with and without `--events` (every FN/FP/IDSW/Frag written), as whole processes."""
    table = Table(title=f"the cost of --events (whole processes, alternated, medians of {repeat})")
    for column in ("frames x objects", "eval s", "eval --events s", "ratio", "events", "counts = CLEAR"):
        table.add_column(column, justify="right")
    motpipe = [str(Path(sys.executable).parent / "motpipe"), "eval"]
    for size in sizes:
        with bench_files(size) as (tmp, gt, pred, config, gt_path, pred_path):
            base = [*motpipe, "--gt", str(gt_path), "--pred", str(pred_path), "--json", str(Path(tmp) / "m.json")]
            events_path = Path(tmp) / "events.json"
            times = [(timed_process(base, 1)[0], timed_process([*base, "--events", str(events_path)], 1)[0])
                     for _ in range(repeat)]  # alternated: both see the same moments of a noisy machine  # fmt: skip
            plain_s, with_s = (statistics.median(column) for column in zip(*times, strict=True))
            counts = json.loads(events_path.read_text())["counts"]
            clear = json.loads((Path(tmp) / "m.json").read_text())["trackeval"]
            names = {"fn": "CLR_FN", "fp": "CLR_FP", "idsw": "IDSW", "frag": "Frag"}
            same = counts == {kind: clear[name] for kind, name in names.items()}
            ratio = f"{with_s / plain_s:.2f}x"
            table.add_row(size, f"{plain_s:.3f}", f"{with_s:.3f}", ratio, str(sum(counts.values())), str(same))
    Console(width=140).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["5000x40", "20000x20"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--whole-process", action="store_true", help="time fresh processes, as a user runs them")
    parser.add_argument("--events", action="store_true", help="the cost of `motpipe eval --events`")
    args = parser.parse_args()
    if args.events:
        events_cost(args.sizes, args.repeat)
        return
    if args.whole_process:
        whole_process(args.sizes, args.repeat)
        return
    table = Table(title="evaluation end to end (parse + HOTA + CLEAR + Identity), best of --repeat")
    columns = ("frames x objects", "GT rows", "motpipe s", "TrackEval s", "speed-up", "bit-identical", "numpy path s")
    for column in columns:
        table.add_column(column, justify="right")
    for size in args.sizes:
        with bench_files(size) as (_, gt, pred, config, gt_path, pred_path):
            ours_s, ours = timed(lambda: run_motpipe(gt_path, pred_path, "compiled"), args.repeat)  # noqa: B023
            numpy_s, numpy_result = timed(lambda: run_motpipe(gt_path, pred_path, "numpy"), args.repeat)  # noqa: B023
            theirs_s, theirs = timed(lambda: run_trackeval(config), args.repeat)  # noqa: B023
        same = identical(ours, theirs) and all(numpy_result[name] == value for name, value in ours.items())
        speed_up = f"{theirs_s / ours_s:.1f}x"
        table.add_row(size, str(len(gt)), f"{ours_s:.3f}", f"{theirs_s:.2f}", speed_up, str(same), f"{numpy_s:.2f}")
    Console(width=130).print(table)


if __name__ == "__main__":
    main()
