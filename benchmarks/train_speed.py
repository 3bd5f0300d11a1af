"""Training speed: optimizer steps (and images) per second and peak memory, through the same step code the
`motpipe train` commands run.

MOTRv2 (`Trainer.train_step`: clip forward with matching and every loss term, backward, clipping, AdamW):

Cases: the official model (ResNet-50, 6+6 layers) on 3-frame clips at the reference vectors' 192x352 and at
a typical training size (shorter side 608, the smallest official scale), fp32, and with bf16 autocast on a
GPU; plus the small test configuration (1+2 layers, frozen backbone) at 256x144. Each case runs in its own
process so the peak resident memory (CPU) is the case's own; on a GPU the peak allocated memory is shown.
D-FINE (`StepRunner.step`: train-mode forward with 100 denoising queries, the official criterion, backward,
clip 0.1, AdamW, EMA, warmup): N and L on batches of 640x640 images with 6 boxes each, fp32, AMP on a GPU;
and N at 256x256 (the tests' size).
There is no official training code here to time against: the numbers are absolute.

    .venv/bin/python benchmarks/train_speed.py [--model motrv2|dfine|all] [--steps 5] [--device auto] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from rich.console import Console
from rich.table import Table

CASES = {
    "official 192x352": dict(size=(192, 352), small=False, autocast=False),
    "dfine N 640 batch 4": dict(dfine="n", pixels=640, batch=4, autocast=False),
    "dfine N 256 batch 3 (tests)": dict(dfine="n", pixels=256, batch=3, autocast=False),
    "dfine L 640 batch 4": dict(dfine="l", pixels=640, batch=4, autocast=False),
    "dfine L 640 batch 8 AMP": dict(dfine="l", pixels=640, batch=8, autocast=True),
    "official 608x1080": dict(size=(608, 1080), small=False, autocast=False),
    "official 608x1080 bf16": dict(size=(608, 1080), small=False, autocast=True),
    "small 144x256 (tests)": dict(size=(144, 256), small=True, autocast=False),
}


def run_dfine_case(case: dict, steps: int, device: str) -> dict:
    from services.detector.dfine.configs import dfine_config
    from services.detector.dfine.model import DFINE
    from services.detector.dfine.training.criterion import DFINECriterion
    from services.detector.dfine.training.optim import LinearWarmup, ModelEMA, OptimConfig, build_optimizer
    from services.detector.dfine.training.step import StepRunner

    model = DFINE(dfine_config(case["dfine"], "obj365")).to(device).train()
    optimizer = build_optimizer(model, OptimConfig(case["dfine"]))
    runner = StepRunner(
        model,
        DFINECriterion(model.num_classes),
        optimizer,
        LinearWarmup(optimizer, 500),
        ModelEMA(model),
        autocast=case["autocast"],
    )
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(case["batch"], 3, case["pixels"], case["pixels"], generator=gen).to(device)
    targets = []
    for _ in range(case["batch"]):
        centres = torch.rand(6, 2, generator=gen) * 0.8 + 0.1
        boxes = torch.cat([centres, torch.full((6, 1), 0.05), torch.full((6, 1), 0.15)], 1).to(device)
        targets.append({"boxes": boxes, "labels": torch.randint(0, 2, (6,), generator=gen).to(device)})
    runner.step(images, targets)  # warm-up (allocations, kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        runner.step(images, targets)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {"steps_per_s": steps / (time.perf_counter() - start)}


def run_case(name: str, steps: int, device: str, threads: int | None) -> dict:
    from services.tracker.motrv2.config import MOTRv2Config
    from services.tracker.motrv2.training.clip import Clip, ClipModel, ClipOptions
    from services.tracker.motrv2.training.criterion import ClipCriterion, FrameTargets
    from services.tracker.motrv2.training.loop import LoopConfig, Trainer
    from services.tracker.motrv2.training.optim import OptimConfig, apply_trainable
    from services.tracker.motrv2.training.weights import fresh_model

    case = CASES[name]
    if threads:
        torch.set_num_threads(threads)
    if "dfine" in case:
        result = run_dfine_case(case, steps, device)
        peak = (
            torch.cuda.max_memory_allocated()
            if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        )
        return {**result, "images_per_s": result["steps_per_s"] * case["batch"], "peak_mib": peak / 2**20}
    cfg = MOTRv2Config(enc_layers=1, dec_layers=2, dim_feedforward=256) if case["small"] else MOTRv2Config()
    model = fresh_model(cfg)
    lr_backbone = 0.0 if case["small"] else 2e-5
    apply_trainable(model, "full", lr_backbone=lr_backbone)
    model.to(device)
    height, width = case["size"]
    gen = torch.Generator().manual_seed(0)
    targets, proposals = [], []
    for t in range(3):  # 6 objects moving a little, 8 proposals near them
        centres = torch.rand(6, 2, generator=gen) * 0.8 + 0.1 + 0.01 * t
        boxes = torch.cat([centres, torch.full((6, 1), 0.05), torch.full((6, 1), 0.2)], 1)
        targets.append(FrameTargets(boxes, torch.zeros(6, dtype=torch.long), torch.arange(6)))
        noisy = torch.cat([boxes, boxes[:2]]) + 0.005 * torch.randn(8, 4, generator=gen)
        proposals.append(torch.cat([noisy.clamp(0.01, 0.99), torch.rand(8, 1, generator=gen)], 1))
    clip = Clip([torch.randn(3, height, width, generator=gen) for _ in range(3)], targets, proposals)
    loop = LoopConfig(autocast=case["autocast"], optim=OptimConfig(lr_backbone=lr_backbone))
    trainer = Trainer(ClipModel(model, ClipCriterion(1), ClipOptions()), None, loop, "unused", torch.device(device))
    model.train()
    trainer.train_step(clip)  # warm-up (allocations, kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(clip)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = (
        torch.cuda.max_memory_allocated()
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {"steps_per_s": steps / elapsed, "images_per_s": 3 * steps / elapsed, "peak_mib": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--model", choices=["motrv2", "dfine", "all"], default="all")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case in this process
    args = parser.parse_args()
    from shared.settings import pick_device

    device = pick_device(args.device)
    if args.case:
        print(json.dumps(run_case(args.case, args.steps, device, args.threads)))
        return
    gpu = device.startswith("cuda")
    threads = args.threads or torch.get_num_threads()
    where = torch.cuda.get_device_name() if gpu else f"CPU, {threads} threads"
    title = f"Training steps on {where}, torch {torch.__version__}, {args.steps} after a warm-up"
    table = Table(title=title)
    memory = "peak memory MiB" + (" (GPU allocated)" if gpu else " (RSS)")
    for column in ("case", "steps/s", "s/step", "images/s", memory):
        table.add_column(column, justify="right")
    for name, case in CASES.items():
        if (case["autocast"] and not gpu) or args.model not in ("all", "dfine" if "dfine" in case else "motrv2"):
            continue
        command = [sys.executable, __file__, "--case", name, "--steps", str(args.steps), "--device", device]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:  # show why and go on with the other cases
            table.add_row(name, "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:100], "", "", "")
            continue
        result = json.loads(done.stdout.splitlines()[-1])
        rate = result["steps_per_s"]
        table.add_row(
            name, f"{rate:.3f}", f"{1 / rate:.2f}", f"{result['images_per_s']:.2f}", f"{result['peak_mib']:.0f}"
        )
    Console().print(table)


if __name__ == "__main__":
    main()
