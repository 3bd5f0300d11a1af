"""Listing runs at lab scale: the run index with 100,000 runs, on SQLite and on PostgreSQL.

Writes N run folders (`run.json`, and `metrics.json` for the evaluated half) into a temporary data root, times
`motpipe runs reindex` building the index from them, then times, in process through the real app
(FastAPI's TestClient), the median of `--repeat` requests each: `GET /runs?limit=50` (page 1, and page 3 by
its cursor), filtered and sorted pages, a text search, and the `/ui` runs page. The reference is the
issue's budget: a page < 50 ms, the `/ui` page < 300 ms; the previous `GET /runs`, which read and
validated every `run.json`, is timed at 10,000 runs for the ratio (`--old-at`).

    .venv/bin/python benchmarks/index_speed.py [--runs 100000] [--repeat 21]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]   # omit: SQLite only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from shared.schemas import ArtifactInfo, RunRecord, StageRecord, StageState, utcnow

TAGS = ["ball", "night", "moderate", "aggressive", "baseline", "match3", "v2"]


def write_runs(root: Path, count: int, seed: int = 0) -> None:
    """`count` run folders as the stages leave them: detected, most tracked, half evaluated."""
    rng = random.Random(seed)
    runs = root / "runs"
    runs.mkdir(parents=True)
    start = utcnow() - timedelta(days=120)
    for i in range(count):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex[:16]
        tracker = rng.choice(["bytetrack", "motrv2"])
        video = f"match{i % 40:02d}.mp4"
        detect = {"detector": "dfine", "weights": "dfine_l_obj365.pth"}
        stages = {"detect": StageRecord(state=StageState.succeeded, params=detect),
                  "track": StageRecord(state=StageState.succeeded, params={"tracker": tracker}),
                  "eval": StageRecord()}  # fmt: skip
        record = RunRecord(run=run_id, created=start + timedelta(seconds=i * 100), stages=stages,
                           inputs={"upload": video}, name=f"{video} · {tracker} score_threshold={rng.random():.2f}",
                           tags=rng.sample(TAGS, rng.randint(0, 2)))  # fmt: skip
        folder = runs / run_id
        folder.mkdir()
        if i % 2 == 0:
            hota = rng.random()
            metrics = {"trackeval": {"HOTA": hota, "DetA": hota, "AssA": hota, "IDF1": rng.random(),
                                     "MOTA": rng.random(), "IDSW": rng.randint(0, 50)}}  # fmt: skip
            (folder / "metrics.json").write_text(json.dumps(metrics))
            record.stages["eval"] = StageRecord(state=StageState.succeeded)
            record.artifacts["metrics.json"] = ArtifactInfo(bytes=100, url="")
        (folder / "run.json").write_text(record.model_dump_json(indent=1))


def median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def measure(root: Path, url: str | None, repeat: int) -> list[tuple[str, float, float | None]]:
    from fastapi.testclient import TestClient

    from services.gateway.app import create
    from shared.run_index import close_indexes
    from shared.run_store import RunStore
    from shared.settings import Settings

    close_indexes()
    store = RunStore(root, url)
    began = time.perf_counter()
    indexed = store.reindex()
    reindex_s = time.perf_counter() - began
    client = TestClient(create(Settings(data_root=root, database_url=url)))

    def get(path: str, **params):
        answer = client.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer

    page2 = get("/runs", limit=50).json()["next"]
    page3 = get("/runs", limit=50, cursor=page2).json()["next"]
    rows = [
        ("GET /runs?limit=50", lambda: get("/runs", limit=50), 50),
        ("GET /runs?limit=50, page 3 by cursor", lambda: get("/runs", limit=50, cursor=page3), 50),
        ("GET /runs?tracker=motrv2&sort=-hota", lambda: get("/runs", tracker="motrv2", sort="-hota"), 50),
        ("GET /runs?tag=ball&sort=-idf1", lambda: get("/runs", tag="ball", sort="-idf1"), 50),
        ("GET /runs?state=succeeded&sort=name", lambda: get("/runs", state="succeeded", sort="name"), 50),
        ("GET /runs?q=match07 (text search)", lambda: get("/runs", q="match07"), 50),
        ("GET /ui (runs page)", lambda: get("/ui"), 300),
    ]
    out = [(f"reindex of {indexed:,} folders (s)", reindex_s, None, None)]
    for name, call, budget in rows:
        warm = median_ms(call, repeat)  # the page's `total` counted once, then cached for a few seconds

        def cold(call=call):
            store.index.totals.clear()  # every request counts its matches again
            call()

        out.append((name, warm, median_ms(cold, repeat), budget))
    close_indexes()
    return out


def old_listing_ms(root: Path, count: int) -> float:
    """What `GET /runs` did before the index: read and validate every run.json, sort by created."""
    runs = sorted((root / "runs").iterdir())[:count]
    began = time.perf_counter()
    records = [RunRecord.model_validate_json((f / "run.json").read_text()) for f in runs]
    records.sort(key=lambda r: r.created, reverse=True)
    return (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--postgres", help="an admin URL of a PostgreSQL server (a database is made and dropped)")
    parser.add_argument("--old-at", type=int, default=10_000, help="runs for the old whole-folder listing")
    args = parser.parse_args()
    console = Console(width=150)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        began = time.perf_counter()
        write_runs(root, args.runs)
        console.print(f"wrote {args.runs:,} run folders in {time.perf_counter() - began:.0f} s")
        backends = [("SQLite", None)]
        drop = None
        if args.postgres:
            import sqlalchemy

            admin = sqlalchemy.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
            name = f"motpipe_bench_{os.getpid()}"
            with admin.connect() as connection:
                connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
            backends.append(("PostgreSQL", args.postgres.rsplit("/", 1)[0] + "/" + name))

            def drop() -> None:
                with admin.connect() as connection:
                    connection.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))

        try:
            results = {label: measure(root, url, args.repeat) for label, url in backends}
        finally:
            if drop:
                drop()
        old = old_listing_ms(root, args.old_at)
    table = Table(title=f"run index, {args.runs:,} runs: median of {args.repeat} requests (ms)")
    table.add_column("what")
    for label, _ in backends:
        table.add_column(label, justify="right")
        table.add_column(f"{label}, total not cached", justify="right")
    table.add_column("budget", justify="right")
    for i, (name, _, _, budget) in enumerate(results["SQLite"]):
        cells = []
        for label, _ in backends:
            _, warm, cold, _ = results[label][i]
            cells += [f"{warm:.1f}", f"{cold:.1f}" if cold is not None else ""]
        table.add_row(name, *cells, f"< {budget} ms" if budget else "")
    console.print(table)
    console.print(f"before the index, GET /runs read every run.json: {old:.0f} ms at {args.old_at:,} runs "
                  f"(ratio to the indexed page on SQLite: {old / results['SQLite'][1][1]:.0f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
