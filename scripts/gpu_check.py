"""Every GPU path of detection and tracking on synthetic 1080p clips, in one table: what CI (CPU only) cannot
measure. The README's GPU tables come from its output.

    python scripts/gpu_check.py [--device cuda] [--frames 1024] [--track-frames 200] [--slots 1 2 4 8]
                                [--with-training]

Rows (weights keep their initial values: speed and agreement do not depend on them):
- the host: frames/s decoded and converted with no model (the frame threads `run_detection` uses), with and
  without Pillow's resize; and whether the GPU's own resize (`services/detector/dfine/resize.py`) gives
  Pillow's bytes for the clip's frames;
- NVDEC (when PyNvVideoCodec is installed, `shared/nvdec.py`): whether every frame it decodes equals PyAV's,
  and frames/s decoded and converted on the GPU with no model;
- the feed: D-FINE N and L at batch 32 (fp32, bf16 autocast) and MOTRv2 (fp32, bf16): `run_detection` /
  `run_tracking` end to end against the forward pass alone (`benchmarks/detect_speed.py`, `track_speed.py`);
  the goal is end to end >= 85 % of model-only; D-FINE N fp32 again with Pillow resizing on the host, with
  one batch in flight and, where NVDEC decoded, with PyAV decoding (what each of them buys);
- D-FINE N through ONNX Runtime (on a GPU only with the onnxruntime-gpu build's providers): an fp32 export
  (TensorRT when the provider is present, else CUDA) and an fp16 export (TensorRT fp16), each timed end to end
  after a first run that builds and caches the engine (its time reported), and its det_db compared with
  PyTorch fp32's: the share of PyTorch's boxes (score >= 0.3) with a box at IoU >= 0.9 in the same frame, and
  the largest score difference between those;
- MOTRv2 slots (`motpipe worker --gpu-slots K`): aggregate frames/s and memory per slot for each K;
- `--with-training`: `scripts/gpu_training_check.py` as it is (its own table), passed or not.

Runs on a CPU too (`--device cpu --frames 16 --track-frames 2 --slots 1`: a smoke test of the script itself;
bf16 and TensorRT rows then say why they are absent). Exits 1 when a path fails.

On the lent H200 (Python 3.12, no network): `scripts/device_wheels.py` says what to carry and how to start it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from itertools import islice, zip_longest
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from benchmarks.detect_speed import end_to_end_rate, host_feed_rate, model_only_rate, sync
from benchmarks.track_speed import slots, tracking_rates
from services.detector.dfine.configs import dfine_config
from services.detector.dfine.detector import DFINEDetector
from services.detector.dfine.model import DFINE
from services.detector.dfine.preprocess import prepare as prepare_dfine
from services.detector.dfine.resize import to_batch_resized
from services.detector.engine import run_detection
from services.evaluator.metrics.sequence import box_iou
from services.tracker.motrv2.config import MOTRv2Config
from services.tracker.motrv2.model import MOTRv2
from shared import nvdec
from shared.errors import InputError
from shared.formats.det_db import det_db_key
from shared.frames import frame_workers, open_frames
from shared.schemas import DetectOptions
from shared.settings import pick_device
from shared.synth import render_scene

console = Console(width=160)
GOAL = 0.85  # end to end / model-only


def add(table: Table, *cells: str) -> None:
    """A row of the table, also printed at once: a run cut short (the device's time limit) keeps what it measured."""
    table.add_row(*cells)
    print(" | ".join(cells), flush=True)


def agreement(reference: dict, other: dict) -> tuple[float, float]:
    """(share of `reference`'s boxes with a box in `other` at IoU >= 0.9 in the same frame, the largest score
    difference of those pairs); rows are l, t, w, h, score."""
    matched = total = 0
    worst = 0.0
    for key, rows in reference.items():
        rows, theirs = np.asarray(rows), np.asarray(other.get(key, np.zeros((0, rows.shape[1]))))
        total += len(rows)
        if not len(rows) or not len(theirs):
            continue
        iou = box_iou(rows[None, :, :4], theirs[None, :, :4])[0]
        best = iou.argmax(axis=1)
        hit = iou[np.arange(len(rows)), best] >= 0.9
        matched += int(hit.sum())
        if hit.any():
            worst = max(worst, float(np.abs(rows[hit, 4] - theirs[best[hit], 4]).max()))
    return (matched / total if total else 1.0), worst


def det_db_of(detector, video: Path) -> dict:
    options = DetectOptions(detector="dfine", score_threshold=0.3, sequence="bench")
    return run_detection(open_frames(video), detector, options).det_db()


def host_rows(table: Table, device: str, video: Path) -> bool:
    workers = frame_workers(device)
    for label, prepare in (("decode + BGR", None), ("decode + BGR + Pillow resize", prepare_dfine)):
        rate = host_feed_rate(video, prepare, workers)
        add(table, "host", f"{label}, {workers} thread{'s' * (workers > 1)}", f"{rate:.1f} frames/s, no model", "")
    images = [image for _, image in islice(open_frames(video), 8)]
    resized = to_batch_resized(images, 640, device)
    equal = resized is not None and all(
        np.array_equal(got.permute(1, 2, 0).cpu().numpy(), prepare_dfine(image).pixels)
        for got, image in zip(resized, images, strict=True)
    )
    add(table, "host", "D-FINE resize on the device", "Pillow's bytes on 8 frames" if equal else
        "differs from Pillow (the detector falls back to Pillow)", "ok" if equal else "FAILED")  # fmt: skip
    return equal


def nvdec_rows(table: Table, device: str, video: Path) -> bool:
    """Every frame NVDEC gives against PyAV's, then its rate with no model (a second pass)."""
    if not nvdec.installed():
        add(table, "NVDEC", "decode + BGR on the GPU", "PyNvVideoCodec is not installed", "")
        return True
    frames, note = nvdec.nvdec_frames(open_frames(video), device)
    if frames is None:
        add(table, "NVDEC", "decode + BGR on the GPU", note, "not used")
        return True
    count = differ = 0
    for (number, ours), (theirs_number, theirs) in zip_longest(frames, open_frames(video), fillvalue=(0, None)):
        count += 1
        same = ours is not None and theirs is not None and number == theirs_number
        differ += not (same and np.array_equal(ours.cpu().numpy(), theirs))
    start = time.perf_counter()
    decoded = sum(1 for _ in nvdec.nvdec_frames(open_frames(video), device)[0])
    sync(device)
    rate = decoded / (time.perf_counter() - start)
    add(table, "NVDEC", "decode + BGR on the GPU", f"{rate:.1f} frames/s, no model; "
        f"{count - differ}/{count} frames equal to PyAV's", "ok" if not differ else "FAILED")  # fmt: skip
    return not differ


def feed_rows(table: Table, device: str, video: Path, frames: int, tmp: Path) -> bool:
    ok = True
    for size in ("n", "l"):
        model = DFINE(dfine_config(size, "obj365")).deploy().to(device)
        for autocast in (False, True):
            name = f"D-FINE {size.upper()} batch 32 {'bf16' if autocast else 'fp32'}"
            if autocast and not device.startswith("cuda"):
                add(table, "feed", name, "bf16 needs a GPU", "")
                continue
            detector = DFINEDetector(model, device, batch_size=32, autocast=autocast)
            e2e = end_to_end_rate(detector, video, frames, tmp / "db.json")
            alone = model_only_rate(detector.model, device, 32, autocast, frames)
            met = e2e >= GOAL * alone
            ok = ok and (met or not device.startswith("cuda"))
            add(table, "feed", name, f"{e2e:.1f} vs {alone:.1f} frames/s model-only: {e2e / alone:.0%}",
                "goal met" if met else f"below {GOAL:.0%}")  # fmt: skip
            if size == "n" and not autocast:  # what the GPU's resize, the second batch in flight, NVDEC buy
                for label, change in (("Pillow resizing on the host", {"resize_on_device": False}),
                                      ("one batch in flight", {"workers": 1}),
                                      ("PyAV decoding", {"device_frames": False})):  # fmt: skip
                    if "device_frames" in change and not nvdec.wanted():
                        continue  # the rows above decoded with PyAV already
                    other = DFINEDetector(model, device, batch_size=32, **change)
                    rate = end_to_end_rate(other, video, frames, tmp / "db.json")
                    add(table, "feed", f"{name}, {label}", f"{rate:.1f} frames/s", "for comparison")
    return ok


def track_rows(table: Table, device: str, video: Path, frames: int) -> None:
    rng = np.random.default_rng(0)
    ten = lambda: np.column_stack(  # noqa: E731 - ten proposals anywhere in the frame
        [rng.uniform(0, 1700, (10, 2)), rng.uniform(30, 200, (10, 2)), rng.uniform(0.4, 0.9, 10)]
    )
    proposals = {det_db_key("bench", f): ten() for f in range(1, frames + 1)}
    model = MOTRv2(MOTRv2Config()).eval().to(device)
    for autocast in (False, True):
        name = f"MOTRv2 {'bf16' if autocast else 'fp32'}"
        if autocast and not device.startswith("cuda"):
            add(table, "feed", name, "bf16 needs a GPU", "")
            continue
        e2e, alone = tracking_rates(model, device, autocast, video, proposals, frames)
        add(table, "feed", name, f"{e2e:.2f} vs {alone:.2f} frames/s model-only: {e2e / alone:.0%}",
            "goal met" if e2e >= GOAL * alone else f"below {GOAL:.0%}")  # fmt: skip


def onnx_rows(table: Table, device: str, video: Path, frames: int, tmp: Path) -> bool:
    import onnxruntime as ort

    from services.detector.dfine.onnx_detector import OnnxDFINEDetector

    gpu_providers = {"TensorrtExecutionProvider", "CUDAExecutionProvider"} & set(ort.get_available_providers())
    if device.startswith("cuda") and not gpu_providers:  # timing its CPU provider on a GPU machine says nothing
        add(table, "ONNX", "D-FINE N via TensorRT / CUDA", f"onnxruntime {ort.__version__} has neither provider "
            "here (the onnxruntime-gpu build has them)", "not run")  # fmt: skip
        return True
    torch.manual_seed(0)
    weights = tmp / "dfine_n.pth"
    torch.save({"model": DFINE(dfine_config("n", "obj365")).state_dict()}, weights)
    reference = det_db_of(DFINEDetector.from_weights(weights, "n", "obj365", device, batch_size=32), video)
    ok = True
    for label, extra in (("fp32", []), ("fp16", ["--fp16"])):
        path = tmp / f"dfine_n_{label}.onnx"
        export = [sys.executable, "-m", "services.gateway.cli", "export", "dfine", "--weights", str(weights),
                  "--onnx", str(path), "--batch", "dynamic", *extra]  # fmt: skip
        done = subprocess.run(export, capture_output=True, text=True)
        if done.returncode != 0:
            add(table, "ONNX", f"export {label}", done.stderr.strip()[-200:], "FAILED")
            ok = False
            continue
        start = time.perf_counter()
        detector = OnnxDFINEDetector(path, device, batch_size=32)
        first = det_db_of(detector, video)  # builds and caches a TensorRT engine when that provider runs
        built = time.perf_counter() - start
        provider = detector.providers[0].replace("ExecutionProvider", "")
        e2e = end_to_end_rate(detector, video, frames, tmp / f"{label}.json")
        share, worst = agreement(reference, first)
        add(table, "ONNX", f"D-FINE N {label} via {provider}",
            f"{e2e:.1f} frames/s; first run (session{', engine' if provider == 'Tensorrt' else ''}) "
            f"{built:.1f} s; vs PyTorch fp32: {share:.1%} of boxes at IoU 0.9, score diff <= {worst:.4f}",
            "ok" if share >= 0.95 else "DISAGREES")  # fmt: skip
        ok = ok and share >= 0.95
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=1024, help="frames of the 1920x1080 clip D-FINE reads")
    parser.add_argument("--track-frames", type=int, default=200, help="frames MOTRv2 tracks (per slot too)")
    parser.add_argument("--slots", nargs="+", type=int, default=[1, 2, 4, 8], help="slot counts to measure")
    parser.add_argument("--with-training", action="store_true", help="also run scripts/gpu_training_check.py")
    args = parser.parse_args()
    try:
        args.device = pick_device(args.device)
    except InputError as exc:  # no GPU here: one line, not torch's traceback
        parser.exit(
            2, f"gpu_check: {exc} (a smoke run on a CPU: --device cpu --frames 16 --track-frames 2 --slots 1)\n"
        )
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    table = Table(title=f"motpipe GPU check on {where}, torch {torch.__version__}, "
                        f"{time.strftime('%Y-%m-%d')}")  # fmt: skip
    for column in ("part", "path", "measured", "verdict"):
        table.add_column(column)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        video = render_scene(tmp / "detect", frames=args.frames, seed=3, size=(1920, 1080)).video
        ok = host_rows(table, args.device, video) and ok
        ok = nvdec_rows(table, args.device, video) and ok
        ok = feed_rows(table, args.device, video, args.frames, tmp) and ok
        track_video = render_scene(tmp / "track", frames=args.track_frames, seed=2, size=(1920, 1080)).video
        track_rows(table, args.device, track_video, args.track_frames)
        ok = onnx_rows(table, args.device, video, args.frames, tmp) and ok
        for count, aggregate, memory in slots(args.slots, args.track_frames, args.device, show=False):
            unit = "MiB reserved" if args.device.startswith("cuda") else "MiB peak RSS"
            add(table, "slots", f"MOTRv2 x {count}", f"{aggregate:.2f} frames/s in all, {memory:.0f} {unit} a slot",
                "")  # fmt: skip
    if args.with_training:
        script = Path(__file__).with_name("gpu_training_check.py")
        done = subprocess.run([sys.executable, str(script), "--device", args.device])
        add(table, "training", "gpu_training_check.py", "its table above", "ok" if done.returncode == 0 else "FAILED")
        ok = ok and done.returncode == 0
    console.print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
