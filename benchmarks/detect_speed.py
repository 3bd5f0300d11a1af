"""D-FINE detection speed: frames/s by size, batch size and precision, on the available device.

End to end: decode an mp4 + preprocess + model + postprocess + det_db write; model-only: the forward
pass on a prepared batch. fp32 always; bf16 autocast where a GPU is present. Weights do not change the
speed, so models keep their initial values.

    .venv/bin/python benchmarks/detect_speed.py [--sizes n l] [--batches 1 8 32] [--frames 32] [--device auto]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from services.detector.dfine.configs import dfine_config
from services.detector.dfine.detector import DFINEDetector
from services.detector.dfine.model import DFINE
from services.detector.engine import run_detection, write_detections
from shared.frames import open_frames
from shared.schemas import DetectOptions
from shared.settings import pick_device
from shared.synth import render_scene


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["n", "l"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    table = Table(title=f"D-FINE on {device} ({name}), torch {torch.__version__}, {args.frames} frames 1280x720")
    for column in ("size", "batch", "precision", "end to end frames/s", "model-only frames/s"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        scene = render_scene(tmp, frames=args.frames, seed=3)
        for size in args.sizes:
            model = DFINE(dfine_config(size, "obj365")).deploy().to(device)
            for batch in args.batches:
                for autocast in (False, True):
                    precision = "bf16 autocast" if autocast else "fp32"
                    if autocast and not device.startswith("cuda"):
                        continue
                    detector = DFINEDetector(model, device, batch_size=batch, autocast=autocast)
                    options = DetectOptions(detector="dfine", score_threshold=0.3, sequence="bench")
                    run_detection(open_frames(scene.video), detector, options)  # warm-up
                    sync(device)
                    start = time.perf_counter()
                    result = run_detection(open_frames(scene.video), detector, options)
                    write_detections(result, Path(tmp) / "db.json")
                    sync(device)
                    end_to_end = args.frames / (time.perf_counter() - start)
                    images = torch.rand(batch, 3, 640, 640, device=device)
                    context = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
                    rounds = max(1, args.frames // batch)
                    with torch.inference_mode(), context:
                        model(images)
                        sync(device)
                        start = time.perf_counter()
                        for _ in range(rounds):
                            model(images)
                        sync(device)
                    model_only = rounds * batch / (time.perf_counter() - start)
                    table.add_row(size, str(batch), precision, f"{end_to_end:.2f}", f"{model_only:.2f}")
    Console().print(table)
    if not device.startswith("cuda"):
        Console().print("bf16 autocast rows need a GPU (not measured on CPU)")


if __name__ == "__main__":
    main()
