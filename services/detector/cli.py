"""`motpipe detect`: registers its subcommand on the gateway's parser."""

from __future__ import annotations

import argparse

from shared.cli import console, progress_bar
from shared.errors import InputError


def cmd_detect(args) -> int:
    from services.detector.engine import run_detection, write_detections
    from services.detector.registry import build_detector, with_model_identity
    from shared import nvdec
    from shared.frames import frame_workers, on_gpu, open_frames, prepared_frames
    from shared.schemas import DetectOptions
    from shared.settings import get_settings, pick_device

    options = DetectOptions(
        detector=args.detector,
        weights=args.weights,
        size=args.size,
        dataset=args.dataset,
        score_threshold=args.score_threshold,
        classes=args.classes,
        roi=args.roi,
        min_area=args.min_area,
        sequence=args.sequence,
        batch_size=args.batch_size,
    )
    options = with_model_identity(options)  # a checkpoint's size and dataset, read from it
    source = open_frames(args.input)
    frames = None
    device = args.device or get_settings().device
    if options.detector == "dfine" and not (on_gpu(device) and nvdec.wanted()):
        # decode (and on a CPU resize) while torch is imported and the model loaded (a core that is idle
        # otherwise); a GPU resizes the frames itself; a fine-tune at another input size than 640 reads the
        # frames again. Where NVDEC may decode them, `run_detection` tries it once the model is on the GPU.
        from services.detector.dfine.preprocess import prepare

        frames = prepared_frames(source, None if on_gpu(device) else prepare, frame_workers(device), depth=64)
    try:
        detector = build_detector(options, pick_device(device))
        if frames is not None and detector.input_size != 640:
            frames.close()
            frames = None
        if getattr(detector, "class_names", None):
            console.print("classes: " + ", ".join(f"{i} {name}" for i, name in enumerate(detector.class_names)))
        with progress_bar("detect") as update:
            result = run_detection(source, detector, options, update, frames)
    finally:
        if frames is not None:
            frames.close()
    write_detections(result, args.out, args.format)
    sidecar = ""
    if args.format == "detdb" and result.class_map is not None:
        from shared.formats.det_db import classes_path

        sidecar = f" (classes: {classes_path(args.out)})"
    console.print(
        f"{result.info.detections} detections in {result.info.keys_with_detections}/{result.info.frames} frames "
        f"-> {args.out}{sidecar}"
    )
    return 0


def cmd_export(args) -> int:
    from services.detector.dfine.detector import load_dfine
    from services.detector.dfine.fuse import fuse_backbone
    from services.detector.dfine.identify import resolve
    from services.detector.dfine.onnx_export import export_dfine

    if str(args.weights).endswith(".onnx"):
        raise InputError("--weights is already an ONNX file; give the PyTorch checkpoint", source=args.weights)
    batch = None if args.batch == "dynamic" else int(args.batch)
    size, dataset, identity = resolve(args.weights, args.size, args.dataset)
    model = fuse_backbone(load_dfine(args.weights, size, dataset))
    meta = export_dfine(model, identity, dataset, args.onnx, batch, args.fp16)
    console.print(f"{identity} -> {args.onnx} (opset {meta['opset']}, input {meta['input_size']} px, "
                  f"batch {meta['batch']}{', TensorRT FP16' if args.fp16 else ''})")  # fmt: skip
    return 0


def _batch(text: str) -> str:
    if text != "dynamic" and not (text.isdigit() and 1 <= int(text) <= 1024):
        raise argparse.ArgumentTypeError("a batch size 1..1024 or 'dynamic'")
    return text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="D-FINE as ONNX with its post-processing (run by `detect --weights X.onnx`)")
    p.add_argument("model", choices=["dfine"], help="the model to export")
    p.add_argument("--weights", required=True, help="the D-FINE checkpoint (official or a motpipe fine-tune)")
    p.add_argument("--size", choices=["n", "s", "m", "l", "x"], help="default: read from --weights")
    p.add_argument("--dataset", choices=["coco", "obj365", "crowdhuman"], help="default: read from --weights")
    p.add_argument("--onnx", required=True, help="the .onnx file to write")
    p.add_argument("--batch", type=_batch, default="dynamic", help="images per run: N, or dynamic (default)")
    p.add_argument("--fp16", action="store_true", help="TensorRT builds its engine in FP16 (the file stays FP32)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("detect", help="detect objects in a video, image folder/glob or image")
    p.add_argument("input")
    p.add_argument(
        "--detector",
        default="motion",
        help="motion (background subtraction, no weights) or dfine (a D-FINE checkpoint)",
    )
    p.add_argument("--weights", help="dfine: the checkpoint (official or a motpipe fine-tune) or its ONNX export")
    p.add_argument("--size", choices=["n", "s", "m", "l", "x"], help="dfine: model size (default: read from --weights)")
    p.add_argument("--dataset", choices=["coco", "obj365", "crowdhuman"],
                   help="dfine: the checkpoint's dataset, for class names (default: read from --weights)")  # fmt: skip
    p.add_argument("--out", required=True, help="the det_db (or MOT / JSON) file to write")
    p.add_argument(
        "--format",
        choices=["detdb", "mot", "json"],
        default="detdb",
        help="detdb: the official det_db (+ its classes sidecar); mot: MOT txt with classes; json: with stats",
    )
    p.add_argument("--sequence", default="video", help="det_db keys are SEQUENCE/img1/NNNNNN")
    p.add_argument("--score-threshold", type=float, default=0.3, help="keep detections scoring at least this")
    p.add_argument(
        "--classes",
        help="keep these classes (ids or names, comma-separated); player=person,"
        "ball=\"sports ball\" also names them motpipe's classes 1 and 2 (the det_db's classes sidecar)",
    )
    p.add_argument("--roi", help="x1,y1,x2,y2 or a JSON polygon [[x,y],...]")
    p.add_argument("--min-area", type=float, default=0.0, help="drop boxes smaller than this many pixels")
    p.add_argument("--batch-size", type=int, help="dfine: frames per forward (default 1 on a CPU, 32 on a GPU)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: MOTPIPE_DEVICE or auto)")
    p.set_defaults(func=cmd_detect)
