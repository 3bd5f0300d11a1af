"""MOTRv2 tracking speed on a synthetic 1920x1080 clip at the official input size (800x1422).

End to end per frame: what `motpipe track` runs (`run_tracking`: frames decoded and resized on other
threads, normalised on the device, model, track update); model-only: the forward pass on a prepared input.
fp32 always; bf16 autocast where a GPU is present. Weights do not change the speed, so the model keeps its
initial values.

    .venv/bin/python benchmarks/track_speed.py [--frames 5 on a CPU, 200 on a GPU] [--device auto]
    .venv/bin/python benchmarks/track_speed.py --whole-process [--frames 4]
    .venv/bin/python benchmarks/track_speed.py --slots 1 2 4 8 [--frames 200] [--device auto]

`--whole-process` (CPU): `motpipe track --tracker motrv2` against the official submit_dance.py-style loop as
fresh processes on the same 1080p clip, det_db (10 proposals a frame) and checkpoint; the reference runs the
same model with the pure-PyTorch deformable sampling the official code uses on a CPU (the compiled kernel
switched off), and both write the same MOT lines (checked).

`--slots K...` (item 2 of the GPU issue, what `motpipe worker --gpu-slots K` runs): K processes on one device,
each with its own model, track the same clip at once (after loading and one warm-up frame each, started
together); aggregate frames/s = K x frames / (last end - first start), and each slot's memory: on a GPU the
most torch reserved in it (`max_memory_reserved`, without the ~0.5 GiB CUDA context nvidia-smi would add),
on a CPU its peak RSS.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from services.tracker.engine import run_tracking
from services.tracker.motrv2.config import MOTRv2Config
from services.tracker.motrv2.model import MOTRv2
from services.tracker.motrv2.runtime import preprocess
from services.tracker.motrv2.tracker import MOTRv2Tracker
from shared.formats.det_db import det_db_key
from shared.frames import open_frames
from shared.schemas import TrackOptions
from shared.settings import pick_device
from shared.synth import render_scene


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


REFERENCE_LOOP = """
import sys
import services.tracker.motrv2.layers as layers
layers._msda = None  # the official CPU path: grid_sample-based sampling
from services.gateway.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_measured(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one child process (its own rusage, through wait4)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{command[:3]} failed: {child.stderr.read().decode()[-500:]}")
    return elapsed, usage.ru_maxrss / 1024


def tracking_rates(
    model, device: str, autocast: bool, video: Path, proposals: dict, frames: int
) -> tuple[float, float]:
    """(end to end, model-only) frames/s: `run_tracking` over the clip (`proposals` keyed for sequence
    "bench"), and the forward pass alone on a prepared input."""
    options = TrackOptions(tracker="motrv2")
    tracker = MOTRv2Tracker(model, device, 0.5, autocast=autocast)
    tracker.update(proposals[det_db_key("bench", 1)], next(iter(open_frames(video)))[1])  # warm-up
    tracker = MOTRv2Tracker(model, device, 0.5, autocast=autocast)
    sync(device)
    start = time.perf_counter()
    run_tracking(proposals, options, "bench", frames=open_frames(video), tracker=tracker)
    sync(device)
    end_to_end = frames / (time.perf_counter() - start)
    image = preprocess(next(iter(open_frames(video)))[1]).to(device)
    ref, query = model.proposal_queries(torch.zeros((20, 5), device=device) + 0.5)
    context = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.inference_mode(), context:
        sync(device)
        start = time.perf_counter()
        for _ in range(frames):
            model(image, ref, query)
        sync(device)
    return end_to_end, frames / (time.perf_counter() - start)


def _slot(weights: str, video: str, det_db: str, device: str, barrier, results) -> None:
    """One slot: its own model, one warm-up frame, then the clip once all slots are ready."""
    import resource

    from services.tracker.engine import build_tracker
    from services.tracker.motrv2.checkpoint import load_model
    from shared.formats.det_db import read_det_db

    options = TrackOptions(tracker="motrv2", weights=weights, score_threshold=0.0)
    db = read_det_db(det_db)
    tracker = build_tracker(options, device, load_model(weights).to(device))
    tracker.update(db[det_db_key("clip", 1)], next(iter(open_frames(video)))[1])
    tracker = build_tracker(options, device, tracker.runtime.model)
    barrier.wait()
    start = time.time()
    run_tracking(db, options, "clip", frames=open_frames(video), tracker=tracker)
    sync(device)
    end = time.time()
    if device.startswith("cuda"):
        memory = torch.cuda.max_memory_reserved() / 2**20
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.put((start, end, memory))


def slots(counts: list[int], frames: int, device: str, show: bool = True) -> list[tuple[int, float, float]]:
    """(slots, aggregate frames/s, memory per slot MiB) for each count; `show` prints them as a table."""
    import multiprocessing

    from shared.formats.det_db import write_det_db

    context = multiprocessing.get_context("spawn")  # CUDA in each slot, as the worker's pool processes
    where = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    memory_kind = "GPU memory reserved MiB" if device.startswith("cuda") else "peak RSS MiB"
    table = Table(title=f"MOTRv2 slots on one {where}: {frames} frames 1920x1080 each, 10 proposals a frame")
    for column in ("slots", "aggregate frames/s", "per slot frames/s", "vs 1 slot", f"{memory_kind} per slot"):
        table.add_column(column, justify="right")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        scene = render_scene(tmp, frames=frames, seed=2, size=(1920, 1080))
        rows = lambda: np.column_stack([rng.uniform(0, 1700, (10, 2)), rng.uniform(30, 200, (10, 2)),  # noqa: E731
                                        rng.uniform(0.4, 0.9, 10)])  # fmt: skip
        write_det_db(Path(tmp) / "db.json", {det_db_key("clip", f): rows() for f in range(1, frames + 1)})
        torch.manual_seed(0)
        torch.save({"model": MOTRv2(MOTRv2Config()).state_dict()}, Path(tmp) / "w.pth")
        single, measured = None, []
        for count in counts:
            barrier, results = context.Barrier(count), context.Queue()
            args = (f"{tmp}/w.pth", str(scene.video), f"{tmp}/db.json", device, barrier, results)
            procs = [context.Process(target=_slot, args=args) for _ in range(count)]
            for proc in procs:
                proc.start()
            done = [results.get(timeout=3600) for _ in procs]
            for proc in procs:
                proc.join()
            wall = max(end for _, end, _ in done) - min(start for start, _, _ in done)
            aggregate = count * frames / wall
            single = single or aggregate
            memory = max(m for _, _, m in done)
            measured.append((count, aggregate, memory))
            table.add_row(str(count), f"{aggregate:.2f}", f"{aggregate / count:.2f}", f"{aggregate / single:.2f}x",
                          f"{memory:.0f}")  # fmt: skip
    if show:
        Console().print(table)
    return measured


def whole_process(frames: int) -> None:
    from shared.formats.det_db import det_db_key, write_det_db

    rng = np.random.default_rng(0)
    table = Table(title=f"MOTRv2 whole processes on CPU, {frames} frames 1920x1080, 10 proposals a frame")
    for column in ("motpipe track s", "official-style loop s", "ratio", "peak RSS MiB ours / ref", "same MOT lines"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        scene = render_scene(tmp, frames=frames, seed=2, size=(1920, 1080))

        def rows():
            return np.column_stack(
                [rng.uniform(0, 1700, (10, 2)), rng.uniform(30, 200, (10, 2)), rng.uniform(0.4, 0.9, 10)]
            )

        db = {det_db_key("clip", f): rows() for f in range(1, frames + 1)}
        write_det_db(Path(tmp) / "db.json", db)
        torch.manual_seed(0)
        torch.save({"model": MOTRv2(MOTRv2Config()).state_dict()}, Path(tmp) / "w.pth")
        common = ["track", "--tracker", "motrv2", "--weights", f"{tmp}/w.pth", "--det-db", f"{tmp}/db.json",
                  "--frames", str(scene.video), "--score-threshold", "0.0", "--device", "cpu"]  # fmt: skip
        times, peaks = {}, {}
        for name, command in (("ours", [sys.executable, "-m", "services.gateway.cli"]),
                              ("reference", [sys.executable, "-c", REFERENCE_LOOP])):  # fmt: skip
            times[name], peaks[name] = run_measured([*command, *common, "--out", f"{tmp}/{name}.txt"])
        ours, ref = (np.loadtxt(f"{tmp}/{n}.txt", delimiter=",", ndmin=2) for n in ("ours", "reference"))
        same = ours.shape == ref.shape and (ours[:, :2] == ref[:, :2]).all() and np.abs(ours - ref).max() <= 0.011
        table.add_row(f"{times['ours']:.1f}", f"{times['reference']:.1f}", f"{times['reference'] / times['ours']:.2f}x",
                      f"{peaks['ours']:.0f} / {peaks['reference']:.0f}", str(bool(same)))  # fmt: skip
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, help="frames to time (default: 5 on a CPU, 200 on a GPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--whole-process", action="store_true", help="fresh processes: ours vs the official-style loop")
    parser.add_argument("--slots", nargs="+", type=int, metavar="K", help="K tracking processes at once on the device")
    args = parser.parse_args()
    device = pick_device(args.device)
    args.frames = args.frames or (200 if device.startswith("cuda") else 5)
    if args.whole_process:
        whole_process(args.frames)
        return
    if args.slots:
        slots(args.slots, args.frames, device)
        return
    model = MOTRv2(MOTRv2Config()).eval().to(device)
    rng = np.random.default_rng(0)
    table = Table(title=f"MOTRv2 on {device} ({torch.cuda.get_device_name() if device.startswith('cuda') else 'CPU'}), "
                        f"torch {torch.__version__}, {args.frames} frames 1920x1080 -> 800x1422")  # fmt: skip
    for column in ("precision", "end to end frames/s", "model-only frames/s", "end to end / model-only"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        scene = render_scene(tmp, frames=args.frames, seed=2, size=(1920, 1080))
        proposals = {}
        for f in range(1, args.frames + 1):
            boxes = scene.gt.boxes[scene.gt.frame == f]
            proposals[det_db_key("bench", f)] = np.column_stack([boxes, rng.uniform(0.4, 0.9, len(boxes))])
        for precision in ("fp32", "bf16 autocast"):
            autocast = precision != "fp32"
            if autocast and not device.startswith("cuda"):
                table.add_row(precision, "n/a on CPU", "n/a on CPU", "")
                continue
            end_to_end, model_only = tracking_rates(model, device, autocast, scene.video, proposals, args.frames)
            table.add_row(precision, f"{end_to_end:.2f}", f"{model_only:.2f}", f"{end_to_end / model_only:.0%}")
    Console().print(table)


if __name__ == "__main__":
    main()
