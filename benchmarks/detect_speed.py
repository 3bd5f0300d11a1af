"""D-FINE detection speed: frames/s by size, batch size and precision, on the available device.

End to end: what `motpipe detect` runs (`run_detection`: an mp4 decoded on one thread, converted and
resized on others, uint8 batches made floats on the device, model, postprocess) + det_db write;
model-only: the forward pass on a prepared batch; their ratio is how well the feed keeps up. fp32 always;
bf16 autocast where a GPU is present. Weights do not change the speed, so models keep their initial values.

    .venv/bin/python benchmarks/detect_speed.py [--sizes n l] [--batches 1 8 32] [--frames N] [--device auto]
    .venv/bin/python benchmarks/detect_speed.py --whole-process [--sizes n] [--frames 40] [--repeat 2]

`--whole-process` times what a user runs, each a fresh process on the same 1080p mp4 and the same
checkpoint (initial weights saved with torch.save): `motpipe detect --detector dfine` against a loop in the
style of the official `tools/inference/torch_inf.py` (OpenCV reads frames, PIL resize to 640x640, ToTensor,
the deployed model and postprocessor frame by frame, one det_db write at the end). With `--runtime onnx`
the checkpoint is exported once (`motpipe export dfine`, not timed) and `motpipe detect --weights X.onnx`
(ONNX Runtime) is timed against `motpipe detect` on the PyTorch checkpoint.

    .venv/bin/python benchmarks/detect_speed.py --whole-process --runtime onnx [--sizes n] [--repeat 2]

`--host` times the host's side alone, no model: frames/s of a 1920x1080 mp4 decoded and converted to BGR on
1, 2, ... frame threads, with and without Pillow's resize (what a GPU now does itself, `resize.py`).

    .venv/bin/python benchmarks/detect_speed.py --host [--frames 96] [--threads 1 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from services.detector.dfine.configs import dfine_config
from services.detector.dfine.detector import DFINEDetector
from services.detector.dfine.model import DFINE
from services.detector.dfine.preprocess import prepare
from services.detector.engine import run_detection, write_detections
from shared.frames import open_frames, prepared_frames
from shared.schemas import DetectOptions
from shared.settings import pick_device
from shared.synth import render_scene


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


OFFICIAL_STYLE_LOOP = """
import json, sys
import cv2, torch
import torchvision.transforms as T
from PIL import Image
from services.detector.dfine.detector import load_dfine
from services.detector.dfine.model import postprocess
video, weights, size, out, device = sys.argv[1:6]
model = load_dfine(weights, size, "obj365").to(device)
transforms = T.Compose([T.Resize((640, 640)), T.ToTensor()])
capture, frame, db = cv2.VideoCapture(video), 0, {}
while True:
    ok, image = capture.read()
    if not ok:
        break
    frame += 1
    pil = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    w, h = pil.size
    with torch.no_grad():
        logits, boxes = model(transforms(pil)[None].to(device))
        labels, boxes, scores = postprocess(logits, boxes, torch.tensor([[w, h]], dtype=torch.float32, device=device))
    keep = scores[0] > 0.3
    db[f"bench/img1/{frame:06d}"] = [f"{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{s:.6f}\\n"
                                     for (x1, y1, x2, y2), s in zip(boxes[0][keep].tolist(), scores[0][keep].tolist())]
json.dump(db, open(out, "w"))
"""


def end_to_end_rate(detector, video: Path, frames: int, out: Path) -> float:
    """Frames/s of `run_detection` + the det_db write, after one warm-up pass."""
    options = DetectOptions(detector="dfine", score_threshold=0.3, sequence="bench")
    run_detection(open_frames(video), detector, options)  # warm-up
    sync(detector.device)
    start = time.perf_counter()
    write_detections(run_detection(open_frames(video), detector, options), out)
    sync(detector.device)
    return frames / (time.perf_counter() - start)


def host_feed_rate(video: Path, prepare, workers: int) -> float:
    """Frames/s the host hands over with no model to feed: decoding on one thread, the conversion to BGR (and
    `prepare`, e.g. Pillow's resize) on `workers` threads, as `run_detection` reads them. End to end cannot
    be faster; when it is well below this and the model-only rate, the time goes elsewhere (copies,
    synchronisation, post-processing)."""
    start = time.perf_counter()
    count = sum(1 for _ in prepared_frames(open_frames(video), prepare, workers))
    return count / (time.perf_counter() - start)


def model_only_rate(model, device: str, batch: int, autocast: bool, frames: int) -> float:
    """Frames/s of the forward pass alone on a batch already on the device."""
    images = torch.rand(batch, 3, 640, 640, device=device)
    context = torch.autocast("cuda", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    rounds = max(1, frames // batch)
    with torch.inference_mode(), context:
        model(images)
        sync(device)
        start = time.perf_counter()
        for _ in range(rounds):
            model(images)
        sync(device)
    return rounds * batch / (time.perf_counter() - start)


def whole_process(sizes: list[str], frames: int, repeat: int, device: str, runtime: str = "torch") -> None:
    script = Path(sys.executable).parent / "motpipe"  # the installed command; a bare checkout runs the module
    motpipe = [str(script)] if script.exists() else [sys.executable, "-m", "services.gateway.cli"]
    where = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    table = Table(title=f"whole processes, {frames} frames of a 1920x1080 mp4, {where} (best of {repeat})")
    against = "motpipe detect, PyTorch s" if runtime == "onnx" else "official-style loop s"
    ours = "motpipe detect, ONNX Runtime s" if runtime == "onnx" else "motpipe detect s"
    for column in ("size", ours, against, "ratio"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        scene = render_scene(tmp, frames=frames, seed=3, size=(1920, 1080))
        for size in sizes:
            weights = Path(tmp) / f"dfine_{size}.pth"
            torch.save({"model": DFINE(dfine_config(size, "obj365")).state_dict()}, weights)
            detect = [*motpipe, "detect", str(scene.video), "--detector", "dfine", "--sequence", "bench",
                      "--device", device]  # fmt: skip
            runs = {
                "ours": [*detect, "--weights", str(weights), "--out", f"{tmp}/a.json"],
                "official": [sys.executable, "-c", OFFICIAL_STYLE_LOOP, str(scene.video), str(weights), size,
                             f"{tmp}/b.json", device],
            }  # fmt: skip
            if runtime == "onnx":
                exported = Path(tmp) / f"dfine_{size}.onnx"
                subprocess.run([*motpipe, "export", "dfine", "--weights", str(weights), "--onnx", str(exported)],
                               check=True, capture_output=True)  # fmt: skip
                runs = {
                    "ours": [*detect, "--weights", str(exported), "--out", f"{tmp}/a.json"],
                    "official": runs["ours"],
                }
            best = {}
            for name, command in runs.items():
                best[name] = float("inf")
                for _ in range(repeat):
                    start = time.perf_counter()
                    subprocess.run(command, check=True, capture_output=True)
                    best[name] = min(best[name], time.perf_counter() - start)
            ratio = best["official"] / best["ours"]
            table.add_row(size, f"{best['ours']:.2f}", f"{best['official']:.2f}", f"{ratio:.2f}x")
    Console().print(table)


def host_only(frames: int, threads: list[int], repeat: int) -> None:
    table = Table(title=f"the host alone, {frames} frames of a 1920x1080 mp4, no model (best of {repeat})")
    for column in ("frame threads", "decode + BGR frames/s", "+ Pillow resize frames/s", "ratio"):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        video = render_scene(tmp, frames=frames, seed=3, size=(1920, 1080)).video
        for count in threads:
            bare = max(host_feed_rate(video, None, count) for _ in range(repeat))
            resized = max(host_feed_rate(video, prepare, count) for _ in range(repeat))
            table.add_row(str(count), f"{bare:.1f}", f"{resized:.1f}", f"{bare / resized:.2f}x")
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["n", "l"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--frames", type=int, help="frames (default: 32 on a CPU, 1024 on a GPU)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--whole-process", action="store_true", help="fresh processes, ours vs an official-style loop")
    parser.add_argument("--host", action="store_true", help="the host alone: decoding, conversion, Pillow's resize")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="--host: frame threads to time")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                        help="whole processes: onnx times the ONNX export against the PyTorch checkpoint")  # fmt: skip
    args = parser.parse_args()
    if args.host:
        host_only(args.frames or 96, args.threads, args.repeat)
        return
    device = pick_device(args.device)
    args.frames = args.frames or (1024 if device.startswith("cuda") and not args.whole_process else 32)
    if args.whole_process:
        whole_process(args.sizes, args.frames, args.repeat, device, args.runtime)
        return
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    table = Table(title=f"D-FINE on {device} ({name}), torch {torch.__version__}, {args.frames} frames 1280x720")
    for column in ("size", "batch", "precision", "end to end frames/s", "model-only frames/s", "ratio"):
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
                    end_to_end = end_to_end_rate(detector, scene.video, args.frames, Path(tmp) / "db.json")
                    model_only = model_only_rate(model, device, batch, autocast, args.frames)
                    table.add_row(size, str(batch), precision, f"{end_to_end:.2f}", f"{model_only:.2f}",
                                  f"{end_to_end / model_only:.0%}")  # fmt: skip
    Console().print(table)
    if not device.startswith("cuda"):
        Console().print("bf16 autocast rows need a GPU (not measured on CPU)")


if __name__ == "__main__":
    main()
