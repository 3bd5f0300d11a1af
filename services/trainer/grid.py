"""Grids of training jobs: every combination of the given option values is its own job (sequentially on one
device here; one `tracker.train` task each through the API), and a table of their validation metrics."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from shared.atomic import atomic_write_text
from shared.cli import parse_value
from shared.errors import InputError
from shared.schemas import TrainOptions

GRID_KEYS = set(TrainOptions.model_fields) - {"val", "accept", "trainable", "max_steps"}


def parse_grid(pairs: list[str]) -> dict[str, list]:
    """['strategy=minimal,moderate', 'lr=5e-6,1e-5'] -> {'strategy': [...], 'lr': [...]}."""
    grid: dict[str, list] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not values:
            raise InputError(f"--grid needs KEY=V1,V2,..., got {pair!r}", field="grid")
        grid[key] = [parse_value(v) for v in values.split(",")]
    return grid


def combinations(base: TrainOptions, grid: dict[str, list]) -> list[tuple[dict, TrainOptions]]:
    """Each combination's (changed values, full options); an unknown key or a bad value is refused here."""
    unknown = sorted(set(grid) - GRID_KEYS)
    if unknown:
        raise InputError(f"unknown grid key(s) {unknown}; known: {sorted(GRID_KEYS)}", field="grid")
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        changed = dict(zip(keys, values, strict=True))
        try:
            out.append((changed, TrainOptions.model_validate({**base.model_dump(), **changed})))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(f"grid value {changed}: {first['msg']}", field=f"grid.{first['loc'][0]}") from None
    return out


def combination_name(index: int, changed: dict) -> str:
    return f"{index:02d}-" + "-".join(f"{k}={v}" for k, v in changed.items()).replace("/", "_")


def grid_row(name: str, changed: dict, record) -> dict:
    last_val = next((e.val for e in reversed(record.epochs) if e.val), None) or {}
    last_loss = record.epochs[-1].losses.get("loss") if record.epochs else None
    return {
        "job": name,
        **changed,
        "state": record.state.value,
        "error": record.error,
        "loss": last_loss,
        **{k: last_val.get(k) for k in ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")},
    }


def write_table(folder: Path, rows: list[dict]) -> None:
    atomic_write_text(folder / "grid.json", json.dumps(rows, indent=1))
    buffer = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(folder / "grid.csv", buffer.getvalue())


def run_grid(
    folder: Path,
    base: TrainOptions,
    grid: dict[str, list],
    data,
    device: str,
    threads: int | None,
    say: Callable[[str], None] = print,
) -> list[dict]:
    """Run every combination as a job in `folder/<name>/`; a failed one does not stop the others."""
    from .motrv2_job import run_motrv2_job

    combos = combinations(base, grid)
    rows = []
    for index, (changed, options) in enumerate(combos):
        name = combination_name(index, changed)
        say(f"grid {index + 1}/{len(combos)}: {changed}")
        try:
            record = run_motrv2_job(folder / name, options, data, device, threads, say=say, job_id=name)
        except Exception as exc:  # one combination's failure is its row, not the grid's end
            from .jobs import read_job

            if not (folder / name / "job.json").is_file():
                rows.append({"job": name, **changed, "state": "failed", "error": str(exc)})
                write_table(folder, rows)
                continue
            record = read_job(folder / name)
        rows.append(grid_row(name, changed, record))
        write_table(folder, rows)
    return rows
