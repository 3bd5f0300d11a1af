"""`motpipe demo`: synthetic clip -> motion detector -> det_db -> bytetrack -> tracks, with a summary."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from services.detector.engine import run_detection, write_detections
from services.detector.motion import MotionDetector
from services.evaluator.evaluate import evaluate
from services.evaluator.plots import write_plots
from services.evaluator.table import report_table
from services.tracker.engine import build_tracker, run_tracking
from shared.atomic import atomic_write_text
from shared.formats.det_db import read_det_db
from shared.formats.mot_txt import read_mot, write_mot
from shared.frames import open_frames
from shared.schemas import DetectOptions, TrackOptions
from shared.settings import pick_device
from shared.synth import render_scene


def run_demo(
    out: Path,
    frames: int = 150,
    seed: int = 0,
    console: Console | None = None,
    tracker: str = "bytetrack",
    weights: str | None = None,
) -> int:
    console = console or Console()
    out.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]1/4[/] rendering a {frames}-frame synthetic clip -> {out}")
    scene = render_scene(out, frames=frames, seed=seed, name="demo")
    console.print("[bold]2/4[/] detecting (motion) -> det_db.json")
    options = DetectOptions(detector="motion", sequence="demo")
    detections = run_detection(open_frames(scene.video), MotionDetector(), options)
    write_detections(detections, out / "det_db.json")
    console.print(f"[bold]3/4[/] tracking ({tracker}) -> tracks.txt")
    options = TrackOptions(tracker=tracker, weights=weights)
    tracks = run_tracking(read_det_db(out / "det_db.json"), options, "demo", scene.frames,
                          frames=open_frames(scene.video) if tracker == "motrv2" else None,
                          tracker=build_tracker(options, pick_device()))  # fmt: skip
    write_mot(out / "tracks.txt", tracks)

    table = Table(title="motpipe demo")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("frames", str(scene.frames))
    table.add_row("ground-truth objects (players + ball)", str(len(set(scene.gt.id.tolist()))))
    table.add_row("ground-truth boxes", str(len(scene.gt)))
    table.add_row("detections in det_db", str(detections.info.detections))
    table.add_row("frames with detections", f"{detections.info.keys_with_detections}/{detections.info.frames}")
    table.add_row("track boxes", str(len(tracks)))
    table.add_row("track ids", str(len(set(tracks.id.tolist()))))
    console.print(table)

    console.print("[bold]4/4[/] evaluating tracks against the ground truth -> metrics.json, plots/")
    report = evaluate(scene.gt, read_mot(out / "tracks.txt"))
    atomic_write_text(out / "metrics.json", report.model_dump_json(indent=1))
    plots = write_plots(report, out / "plots", f"demo: tracks.txt vs {scene.gt_txt.name}")
    console.print(report_table(report.model_dump(), "demo tracks"), markup=False, highlight=False, soft_wrap=True)
    files = [scene.video, out / "det_db.json", out / "tracks.txt", scene.gt_txt, out / "metrics.json"]
    console.print("files:", *map(str, files), *(str(out / "plots" / p) for p in plots), sep="\n  ")
    return 0
