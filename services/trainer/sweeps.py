"""Tracker sweeps: one tracking + evaluation per combination of thresholds, knobs and checkpoints, all reading
one det_db (never detected again), ranked by HOTA, with a heatmap and a ranked bar chart.

A grid key that is a `/track` field (`score_threshold`, `weights`) sets it; any other key is a knob of the
tracker (`miss_tolerance`, `lost_track_buffer`, ...), validated with the same schema as `POST /track`, so a bad
key or value is refused before anything runs. `--search optuna --trials N` lets Optuna's TPE sampler pick the
combinations over the grid's ranges (numbers: between the smallest and largest value; others: one of them).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.atomic import atomic_write_text
from shared.errors import InputError
from shared.schemas import SWEEP_TRACK_FIELDS, MetricsReport, TrackOptions

from .sweep_plots import combination_label, plot_sweep

LEADERBOARD_KEYS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")


def track_options(tracker: str, params: dict[str, Any]) -> TrackOptions:
    """The /track options of one combination; a bad key or value is an InputError naming it."""
    fields = {k: v for k, v in params.items() if k in SWEEP_TRACK_FIELDS}
    knobs = {k: v for k, v in params.items() if k not in SWEEP_TRACK_FIELDS}
    try:
        options = TrackOptions(tracker=tracker, **fields, options=knobs)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p != "options") or "grid"
        raise InputError(f"grid value {params}: {first['msg']}", field=f"grid.{where}") from None
    if tracker == "motrv2" and not options.weights:
        raise InputError("a motrv2 sweep needs weights (the 'weights' list or a 'weights' grid key)", field="weights")
    return options


def with_weights(grid: dict[str, list], weights: list[str] | None) -> dict[str, list]:
    if weights and "weights" not in grid:
        return {"weights": list(weights), **grid}
    return dict(grid)


def combinations(tracker: str, grid: dict[str, list]) -> list[dict[str, Any]]:
    keys = list(grid)
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    for params in combos:
        track_options(tracker, params)
    return combos


def suggest(trial, grid: dict[str, list]) -> dict[str, Any]:
    """Optuna's choice for one trial over the grid's ranges."""
    params = {}
    for key, values in grid.items():
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numbers and len(set(values)) > 1:
            low, high = min(values), max(values)
            if all(isinstance(v, int) for v in values):
                params[key] = trial.suggest_int(key, int(low), int(high))
            else:
                params[key] = trial.suggest_float(key, float(low), float(high))
        else:
            params[key] = trial.suggest_categorical(key, list(dict.fromkeys(values)))
    return params


def row_from_report(run: str, params: dict, report: MetricsReport | None, state: str, error: str | None) -> dict:
    row: dict[str, Any] = {"run": run, "params": params, "state": state, "error": error}
    if report is not None:
        row |= {k: report.trackeval.get(k) for k in LEADERBOARD_KEYS}
        if report.per_class:
            row["per_class"] = {name: {k: block["trackeval"].get(k) for k in LEADERBOARD_KEYS}
                                for name, block in report.per_class.items()}  # fmt: skip
    return row


def ranked(rows: list[dict]) -> list[dict]:
    """Evaluated rows by HOTA (best first), then the rest in their order."""
    done = [r for r in rows if r.get("HOTA") is not None]
    return sorted(done, key=lambda r: -r["HOTA"]) + [r for r in rows if r.get("HOTA") is None]


def short(value) -> str:
    """A value as a table shows it: numbers with at most 4 significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def leaderboard_text(rows: list[dict], width: int = 100) -> str:
    """The ranked leaderboard as plain text no wider than `width`: rank, the parameters that vary as `k=v`
    cells (keys by their initials, with a legend, when they would not fit), the main scores, and the ball's
    HOTA when there is one."""
    metrics = [*LEADERBOARD_KEYS] + (["ball HOTA"] if any("ball" in (r.get("per_class") or {}) for r in rows) else [])
    score_width = [max(len(k), 6) for k in metrics]
    room = width - 5 - sum(w + 1 for w in score_width) - 1
    keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
    varying = [k for k in keys if len({short(r["params"].get(k)) for r in rows}) > 1] or keys
    names = {k: k for k in varying}
    if max((len(" ".join(f"{k}={short(r['params'].get(k))}" for k in varying)) for r in rows), default=0) > room:
        names = {k: "".join(part[:1] for part in k.split("_")) for k in varying}
    lines = (
        [f"keys: {', '.join(f'{names[k]}={k}' for k in varying)}"[:width]] if names != {k: k for k in varying} else []
    )
    fixed = [f"{k}={short(rows[0]['params'].get(k))}" for k in keys if k not in varying]
    lines += [f"in every row: {' '.join(fixed)}"[:width]] if fixed else []
    lines.append(
        "rank " + "params".ljust(room) + " " + " ".join(k.rjust(w) for k, w in zip(metrics, score_width, strict=True))
    )
    for rank, row in enumerate(rows, start=1):
        params = " ".join(f"{names[k]}={short(row['params'].get(k))}" for k in varying)
        params = (params if len(params) <= room else params[: room - 1] + "…").ljust(room)
        if row["state"] != "succeeded":  # its reason in the score columns
            lines.append(f"{rank:>4} {params} {row['state']}: {row.get('error') or ''}"[:width])
            continue
        ball = ((row.get("per_class") or {}).get("ball") or {}).get("HOTA")
        values = [row.get(k) if k != "ball HOTA" else ball for k in metrics]
        scores = [
            "" if v is None else f"{v:g}" if k == "IDSW" else f"{v:.4f}" for k, v in zip(metrics, values, strict=True)
        ]
        lines.append(f"{rank:>4} {params} " + " ".join(s.rjust(w) for s, w in zip(scores, score_width, strict=True)))
    return "\n".join(lines)


def leaderboard_csv(rows: list[dict]) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    classes = list(dict.fromkeys(name for r in rows for name in r.get("per_class") or {}))
    writer.writerow(["rank", "run", *keys, "state", *LEADERBOARD_KEYS, *(f"{c} HOTA" for c in classes), "error"])
    for rank, row in enumerate(rows, start=1):
        per_class = row.get("per_class") or {}
        writer.writerow([rank, row["run"], *(row["params"].get(k) for k in keys), row["state"],
                         *(row.get(k) for k in LEADERBOARD_KEYS),
                         *((per_class.get(c) or {}).get("HOTA") for c in classes), row.get("error") or ""])  # fmt: skip
    return buffer.getvalue()


def run_sweep_local(
    det_db_path: Path,
    gt_path: Path,
    tracker: str,
    grid: dict[str, list],
    out: Path,
    frames_path: Path | None = None,
    trials: int | None = None,
    device: str = "cpu",
    say: Callable[[str], None] = print,
) -> list[dict]:
    """The CLI's sweep: every combination (or `trials` Optuna trials) tracked and evaluated in this process;
    each combination's tracks and metrics in `out/<nn>/`, the leaderboard and plots in `out/`."""
    from services.evaluator.evaluate import evaluate
    from services.evaluator.ground_truth import read_ground_truth
    from services.tracker.engine import build_tracker, run_tracking
    from services.tracker.motrv2.tracker import load_tracker_model
    from shared.formats.det_db import read_det_db, read_det_db_classes
    from shared.formats.mot_txt import write_mot
    from shared.frames import open_frames

    det_db = read_det_db(det_db_path)
    classes = read_det_db_classes(det_db_path, det_db)
    _, gt = read_ground_truth(gt_path)
    combos = combinations(tracker, grid) if trials is None else []
    models: dict[str, Any] = {}
    rows: list[dict] = []

    def one(params: dict) -> dict:
        name = f"{len(rows):02d}"
        options = track_options(tracker, params)
        try:
            model = None
            if tracker == "motrv2":
                model = models.setdefault(options.weights, load_tracker_model(options.weights, device))
            engine = build_tracker(options, device, model)
            frames = open_frames(frames_path) if frames_path else None
            tracks = run_tracking(det_db, options, None, None, None, str(det_db_path), frames, engine, classes)
            report = evaluate(gt, tracks)
            write_mot(out / name / "tracks.txt", tracks)
            atomic_write_text(out / name / "metrics.json", report.model_dump_json())
            row = row_from_report(name, params, report, "succeeded", None)
        except Exception as exc:  # one combination failing is its row, not the sweep's end
            row = row_from_report(name, params, None, "failed", str(exc))
        rows.append(row)
        say(f"{name} {combination_label(params)}: " + (f"HOTA {row['HOTA']:.4f}" if row.get("HOTA") is not None
                                             else f"failed: {row['error']}"))  # fmt: skip
        return row

    out.mkdir(parents=True, exist_ok=True)
    if trials is None:
        for params in combos:
            one(params)
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
        for _ in range(trials):
            trial = study.ask()
            row = one(suggest(trial, grid))
            if row.get("HOTA") is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, row["HOTA"])
    board = ranked(rows)
    atomic_write_text(out / "leaderboard.json", json.dumps(board, indent=1))
    atomic_write_text(out / "leaderboard.csv", leaderboard_csv(board))
    title = f"sweep of {tracker} on {det_db_path.name} vs {gt_path.name}"
    plot_sweep(rows, grid, out / "plots", title, ranked)
    return board
