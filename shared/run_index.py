"""The run index: one database row per run, sweep and training job, for listing, filtering and sorting.

`run.json` (and `sweep.json`, `job.json`) stay the portable records; the index holds summary columns
copied from them so that a page of 50 out of 100,000 runs is one indexed query instead of reading every
record. Every write of a record updates its row in the same code path (`RunStore.update` and friends), and
`motpipe runs reindex` rebuilds the whole index from the folders.

SQLite at `<data root>/index.sqlite` (WAL, so the API reads while workers write) by default;
`MOTPIPE_DATABASE_URL=postgresql+psycopg://…` for PostgreSQL. The schema is created and upgraded by Alembic
(`shared/index_migrations`) when a process first opens the index.

Pages use keyset pagination: the cursor carries the last row's sort value and id (and a digest of the query
it belongs to, so a cursor from another query is refused rather than silently skipping rows), which keeps
page 2,000 as fast as page 1.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.pool import StaticPool

from shared.errors import InputError
from shared.schemas import RunRecord, StageState

log = logging.getLogger("motpipe.run_index")
MIGRATIONS = Path(__file__).parent / "index_migrations"
RUN_SORTS = ("-created", "created", "-hota", "-idf1", "-mota", "name")
LIST_SORTS = ("-created", "created", "name")  # sweeps and jobs
MAX_LIMIT = 500
_MISSING = -1.0e300  # a run without a metric sorts after every run with one (MOTA can be far below 0)


class Base(DeclarativeBase):
    pass


class Listed:
    """The columns every listing has: what a person named, tagged and noted, and when it was made."""

    name: Mapped[str] = mapped_column(String(200), default="")
    tags: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, as shown (runs filter on `run_tags`)
    note: Mapped[str] = mapped_column(Text, default="")
    search: Mapped[str] = mapped_column(Text, default="")  # lower-cased text `q` looks in
    created: Mapped[float] = mapped_column(Float)  # epoch seconds: one comparable type on every database


class RunRow(Listed, Base):
    __tablename__ = "runs"
    run: Mapped[str] = mapped_column(String(16), primary_key=True)
    parent: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sweep: Mapped[str | None] = mapped_column(String(16), nullable=True)
    video: Mapped[str] = mapped_column(Text, default="")
    detector: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tracker: Mapped[str | None] = mapped_column(String(64), nullable=True)
    weights: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    detect_state: Mapped[str] = mapped_column(String(16))
    track_state: Mapped[str] = mapped_column(String(16))
    eval_state: Mapped[str] = mapped_column(String(16))
    heartbeat: Mapped[float | None] = mapped_column(Float, nullable=True)  # oldest heartbeat of a running stage
    hota: Mapped[float] = mapped_column(Float, default=_MISSING)
    deta: Mapped[float | None] = mapped_column(Float, nullable=True)
    assa: Mapped[float | None] = mapped_column(Float, nullable=True)
    idf1: Mapped[float] = mapped_column(Float, default=_MISSING)
    mota: Mapped[float] = mapped_column(Float, default=_MISSING)
    idsw: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hota_ball: Mapped[float | None] = mapped_column(Float, nullable=True)
    hota_player: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = tuple(
        Index(f"ix_runs_{column}", column, "run")
        for column in ("created", "name", "hota", "idf1", "mota", "parent", "sweep", "detector", "tracker", "state")
    )


class RunTag(Base):
    __tablename__ = "run_tags"
    run: Mapped[str] = mapped_column(String(16), ForeignKey("runs.run", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    __table_args__ = (Index("ix_run_tags_tag", "tag", "run"),)


class SweepRow(Listed, Base):
    __tablename__ = "sweeps"
    sweep: Mapped[str] = mapped_column(String(16), primary_key=True)
    run: Mapped[str] = mapped_column(String(16))
    tracker: Mapped[str] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (Index("ix_sweeps_created", "created", "sweep"), Index("ix_sweeps_name", "name", "sweep"))


class JobRow(Listed, Base):
    __tablename__ = "jobs"
    job: Mapped[str] = mapped_column(String(16), primary_key=True)
    model: Mapped[str] = mapped_column(String(16))
    strategy: Mapped[str | None] = mapped_column(String(32), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    finished_epochs: Mapped[int] = mapped_column(Integer, default=0)
    planned_epochs: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (Index("ix_jobs_created", "created", "job"), Index("ix_jobs_name", "name", "job"))


_MODELS = {"run": RunRow, "sweep": SweepRow, "job": JobRow}


# -- what a row holds --------------------------------------------------------------------------------------
def _base(path: Any) -> str:
    return Path(str(path)).name if path else ""


def _short(value: Any) -> str | None:
    return str(value)[:64] if value else None


def run_state(stages: dict[str, str]) -> str:
    """One word for a run: running or queued while any stage is, else failed if any stage failed, else
    succeeded once a stage succeeded, else pending."""
    values = set(stages.values())
    for state in ("running", "queued", "failed", "succeeded"):
        if state in values:
            return state
    return "pending"


def _metrics(folder: Path | None) -> dict[str, Any]:
    if folder is None:
        return {}
    try:
        report = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    trackeval = report.get("trackeval") or {}
    per_class = report.get("per_class") or {}
    out = {key.lower(): trackeval.get(key) for key in ("HOTA", "DetA", "AssA", "IDF1", "MOTA")}
    out["idsw"] = trackeval.get("IDSW")
    for cls in ("ball", "player"):
        out[f"hota_{cls}"] = ((per_class.get(cls) or {}).get("trackeval") or {}).get("HOTA")
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in out.items()}


def run_row(record: RunRecord, folder: Path | None) -> dict[str, Any]:
    """The index columns of a run (metrics read from the run's `metrics.json` once eval succeeded)."""
    states, heartbeats = {}, []
    for name in ("detect", "track", "eval"):
        stage = record.stages.get(name)
        state = stage.state.value if stage else "pending"
        if stage and stage.state == StageState.pending and stage.task:
            state = "queued"
        if stage and stage.state == StageState.running and stage.heartbeat:
            heartbeats.append(stage.heartbeat.timestamp())
        states[name] = state
    detect = record.stages.get("detect")
    track = record.stages.get("track")
    detect_params = detect.params if detect else {}
    track_params = track.params if track else {}
    video = _base(record.inputs.get("upload") or record.inputs.get("path"))
    evaluated = states["eval"] == "succeeded" and "metrics.json" in record.artifacts
    metrics = _metrics(folder) if evaluated else {}
    row = {
        "run": record.run,
        **listed(record, video),
        "parent": record.parent,
        "sweep": record.inputs.get("sweep") if isinstance(record.inputs.get("sweep"), str) else None,
        "video": video,
        "detector": _short(detect_params.get("detector")),
        "tracker": _short(track_params.get("tracker")),
        "weights": _base(track_params.get("weights") or detect_params.get("weights")) or None,
        "state": run_state(states),
        **{f"{name}_state": state for name, state in states.items()},
        "heartbeat": min(heartbeats) if heartbeats else None,
    }
    for key in ("hota", "idf1", "mota"):
        value = metrics.get(key)
        row[key] = float(value) if isinstance(value, int | float) else _MISSING
    for key in ("deta", "assa", "hota_ball", "hota_player"):
        value = metrics.get(key)
        row[key] = float(value) if isinstance(value, int | float) else None
    row["idsw"] = int(metrics["idsw"]) if isinstance(metrics.get("idsw"), int | float) else None
    return row


def run_summary(row: RunRow, lost_before: float | None = None) -> dict[str, Any]:
    """What `GET /runs` lists for a run: the index columns, the id under `run` as in `run.json`. A running
    stage whose heartbeat is older than `lost_before` (epoch s) reads as failed, as `GET /runs/{run}` says."""
    state = row.state
    stages = {name: getattr(row, f"{name}_state") for name in ("detect", "track", "eval")}
    if lost_before is not None and row.heartbeat is not None and row.heartbeat < lost_before:
        stages = {k: ("failed" if v == "running" else v) for k, v in stages.items()}
        state = run_state(stages)
    metric = lambda v: None if v is None or v <= _MISSING else v  # noqa: E731
    return {
        "run": row.run,
        "name": row.name,
        "tags": json.loads(row.tags),
        "note": row.note,
        "created": iso(row.created),
        "parent": row.parent,
        "sweep": row.sweep,
        "video": row.video,
        "detector": row.detector,
        "tracker": row.tracker,
        "weights": row.weights,
        "state": state,
        "stages": stages,
        "HOTA": metric(row.hota),
        "DetA": row.deta,
        "AssA": row.assa,
        "IDF1": metric(row.idf1),
        "MOTA": metric(row.mota),
        "IDSW": row.idsw,
        "HOTA_ball": row.hota_ball,
        "HOTA_player": row.hota_player,
    }


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def listed(record: Any, *searched: Any) -> dict[str, Any]:
    """The `Listed` columns of a record with a name, tags, note and created time; `q` also finds `searched`."""
    text = "\n".join(str(part) for part in (record.name, record.note, *searched) if part)
    return {"name": record.name[:200], "tags": json.dumps(record.tags), "note": record.note,
            "search": text.lower(), "created": record.created.timestamp()}  # fmt: skip


def sweep_row(record: Any) -> dict[str, Any]:
    return {"sweep": record.sweep, **listed(record, record.run, record.tracker), "run": record.run,
            "tracker": record.tracker, "total": len(record.children)}  # fmt: skip


def job_row(record: Any) -> dict[str, Any]:
    return {"job": record.job, **listed(record, record.model, record.strategy), "model": record.model,
            "strategy": record.strategy, "state": record.state.value, "finished_epochs": record.finished_epochs,
            "planned_epochs": record.planned_epochs}  # fmt: skip


# -- pages ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageQuery:
    """A listing's filters, sort and position. Values were checked for type and size by the API."""

    limit: int = 50
    cursor: str | None = None
    sort: str = "-created"
    q: str | None = None
    filters: tuple[tuple[str, str], ...] = ()  # (column, value), e.g. ("tag", "ball"), ("tracker", "motrv2")

    def digest(self) -> str:
        what = json.dumps([self.sort, self.q or "", sorted(self.filters)])
        return hashlib.sha256(what.encode()).hexdigest()[:12]


def encode_cursor(query: PageQuery, value: Any, key: str) -> str:
    raw = json.dumps({"q": query.digest(), "v": value, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(query: PageQuery) -> tuple[Any, str] | None:
    """(sort value, id) of the last row shown, or None on page 1; a cursor that is not ours, or belongs to
    another query (other filters or sort), is an InputError naming `cursor`."""
    if not query.cursor:
        return None
    try:
        text = query.cursor + "=" * (-len(query.cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(text.encode("ascii")))
        value, key = data["v"], data["k"]
        if not isinstance(data, dict) or data["q"] != query.digest() or not isinstance(key, str):
            raise ValueError
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        raise InputError("not a cursor of this listing (filters or sort changed?): start from page 1",
                         field="cursor") from None  # fmt: skip
    return value, key


def _like(text: str, lower: bool = True) -> str:
    """`q` as a LIKE pattern matching the text itself: %, _ and the escape character lose their meaning."""
    escaped = (text.lower() if lower else text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def page(session: Session, model: type, key: str, query: PageQuery, sort_columns: dict[str, Any], totals=None) -> dict:
    """One page of `model` rows: {"rows", "next", "total"}; keyset pagination on (sort column, id). `totals`
    (a TotalCache) may answer the count, the one part of a page that grows with the table."""
    if query.sort not in sort_columns:
        raise InputError(f"unknown sort {query.sort!r}; one of {', '.join(sort_columns)}", field="sort")
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InputError(f"limit must be 1 to {MAX_LIMIT}", field="limit")
    ident = getattr(model, key)
    where, counted = [], []  # the same filters, written for the page and for the count
    if query.q:
        where.append(model.search.like(_like(query.q), escape="\\"))
    for column, value in query.filters:
        if column == "tag" and model is RunRow:
            # the page walks the sort's index and looks each row's tag up; the count walks the tag's rows
            where.append(select(RunTag.run).where(RunTag.run == ident, RunTag.tag == value).exists())
            counted.append(ident.in_(select(RunTag.run).where(RunTag.tag == value)))
            continue
        if column == "tag":  # sweeps and jobs are few: their JSON list is searched for the quoted tag
            where.append(model.tags.like(_like(json.dumps(value), lower=False), escape="\\"))
        else:
            where.append(getattr(model, column) == value)
        counted.append(where[-1])
    if query.q:
        counted.append(where[0])
    count = lambda: session.scalar(select(func.count()).select_from(model).where(*counted))  # noqa: E731
    total = totals.get((model.__tablename__, query.digest()), count) if totals is not None else count()
    descending = query.sort.startswith("-")
    column = sort_columns[query.sort]
    after = decode_cursor(query)
    stmt = select(model).where(*where)
    if after is not None:
        value, last = after
        if descending:
            stmt = stmt.where(tuple_(column, ident) < tuple_(value, last))
        else:
            stmt = stmt.where(tuple_(column, ident) > tuple_(value, last))
    order = (column.desc(), ident.desc()) if descending else (column.asc(), ident.asc())
    rows = list(session.scalars(stmt.order_by(*order).limit(query.limit + 1)))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    nxt = None
    if more:
        last_row = rows[-1]
        nxt = encode_cursor(query, getattr(last_row, column.key), getattr(last_row, key))
    return {"rows": rows, "next": nxt, "total": total}


# -- the index itself ----------------------------------------------------------------------------------------
def index_url(data_root: Path, url: str | None = None) -> str:
    """The index's database: `url`, else `MOTPIPE_DATABASE_URL`, else SQLite in the data root."""
    url = url or os.environ.get("MOTPIPE_DATABASE_URL") or None
    return url or f"sqlite:///{Path(data_root).resolve() / 'index.sqlite'}"


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # several processes write: wait, never fail at once
    with contextlib.suppress(Exception):  # a read-only data root cannot switch modes; reading still works
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough for a rebuildable index
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextlib.contextmanager
def _migration_lock(engine: Engine, url: str) -> Iterator[None]:
    """One process migrates at a time (the gateway and every worker open the index at start-up)."""
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        yield  # an index in memory belongs to this process alone
    elif engine.dialect.name == "sqlite":
        path = Path(engine.url.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".migrate.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    else:
        yield  # PostgreSQL: env.py takes an advisory lock in the migration's transaction


def migrate(engine: Engine) -> bool:
    """Create or upgrade the schema to the newest revision; True when the index was just created."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _migration_lock(engine, str(engine.url)), engine.begin() as connection:
        fresh = MigrationContext.configure(connection).get_current_revision() is None
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return fresh


class TotalCache:
    """Counts of matching rows for a few seconds. Counting is the one part of a page that grows with the
    table (tens of ms at 100,000 runs); a page's rows are always read fresh. This process's writes clear it;
    another process's writes (a worker finishing a stage) reach a filtered `total` within `ttl_s`."""

    def __init__(self, ttl_s: float = 3.0):
        self.ttl_s, self._counts, self._lock = ttl_s, {}, threading.Lock()

    def get(self, key: tuple, count) -> int:
        now = time.monotonic()
        with self._lock:
            hit = self._counts.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        value = count()
        with self._lock:
            if len(self._counts) > 1000:
                self._counts.clear()
            self._counts[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


class RunIndex:
    """The index of one data root. Write failures are logged, never raised: the record on disk is what
    counts, and `motpipe runs reindex` repairs an index that missed a write."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.totals = TotalCache()

    def analyze(self, vacuum: bool = False) -> None:
        """Refresh the planner's statistics (after a reindex, at start-up): without them SQLite walks a
        filter's index and sorts half the table instead of walking the sort's index. `vacuum` (after a reindex,
        on PostgreSQL): also VACUUM, which marks the rewritten pages all-visible, so that counting a listing's
        total reads the index alone instead of every row (what autovacuum would do later)."""
        postgres = vacuum and self.engine.dialect.name == "postgresql"
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("VACUUM (ANALYZE)" if postgres else "ANALYZE"))
        except SQLAlchemyError as exc:
            log.warning("run index: ANALYZE failed (%s)", exc)

    # writes: rows are replaced whole (delete + insert), one transaction per call
    def put_run(self, record: RunRecord, folder: Path | None) -> None:
        self.put_runs([(record, folder)])

    def put_runs(self, pairs: list[tuple[RunRecord, Path | None]]) -> None:
        if not pairs:
            return
        rows = [run_row(record, folder) for record, folder in pairs]
        tags = [{"run": r.run, "tag": t[:64]} for r, _ in pairs for t in dict.fromkeys(r.tags)]

        def put(session: Session) -> None:
            ids = [row["run"] for row in rows]
            session.execute(delete(RunTag).where(RunTag.run.in_(ids)))
            session.execute(delete(RunRow).where(RunRow.run.in_(ids)))
            session.execute(RunRow.__table__.insert(), rows)  # Core executemany: one round trip per batch
            if tags:
                session.execute(RunTag.__table__.insert(), tags)

        self._write(put, f"run {rows[0]['run']}" if len(rows) == 1 else f"{len(rows)} runs")

    def put_rows(self, kind: str, rows: list[dict]) -> None:
        """Sweep or job rows (`sweep_row`, `job_row`)."""
        if not rows:
            return
        model = _MODELS[kind]
        key = getattr(model, kind)

        def put(session: Session) -> None:
            session.execute(delete(model).where(key.in_([row[kind] for row in rows])))
            session.execute(model.__table__.insert(), rows)

        self._write(put, f"{kind} {rows[0][kind]}")

    def drop(self, kind: str, ident: str) -> None:
        def drop(session: Session) -> None:
            if kind == "run":
                session.execute(delete(RunTag).where(RunTag.run == ident))
            model = _MODELS[kind]
            session.execute(delete(model).where(getattr(model, kind) == ident))

        self._write(drop, f"{kind} {ident}")

    def drop_run(self, run_id: str) -> None:
        self.drop("run", run_id)

    def _write(self, change, what: str) -> None:
        self.totals.clear()
        try:
            with Session(self.engine) as session, session.begin():
                change(session)
        except Exception as exc:  # the index is derived data: never fail the write of the record itself
            log.warning("run index: could not record %s (%s: %s); `motpipe runs reindex` repairs it",
                        what, type(exc).__name__, exc)  # fmt: skip

    # listings
    def runs(self, query: PageQuery, lost_before: float | None = None) -> dict:
        sorts = {"-created": RunRow.created, "created": RunRow.created, "-hota": RunRow.hota,
                 "-idf1": RunRow.idf1, "-mota": RunRow.mota, "name": RunRow.name}  # fmt: skip
        with Session(self.engine) as session:
            found = page(session, RunRow, "run", query, sorts, self.totals)
        return {"runs": [run_summary(r, lost_before) for r in found["rows"]], "next": found["next"],
                "total": found["total"]}  # fmt: skip

    def sweep_states(self, sweep_ids: Iterable[str], lost_before: float | None = None) -> dict[str, dict]:
        """Per sweep: its children's state counts, from the run rows."""
        ids = list(sweep_ids)
        out: dict[str, dict] = {s: {} for s in ids}
        if not ids:
            return out
        with Session(self.engine) as session:
            rows = session.execute(select(RunRow).where(RunRow.sweep.in_(ids)))
            for (row,) in rows:
                state = run_summary(row, lost_before)["state"]
                out[row.sweep][state] = out[row.sweep].get(state, 0) + 1
        return out

    def sweeps(self, query: PageQuery) -> dict:
        sorts = {"-created": SweepRow.created, "created": SweepRow.created, "name": SweepRow.name}
        with Session(self.engine) as session:
            found = page(session, SweepRow, "sweep", query, sorts)
        return found

    def jobs(self, query: PageQuery) -> dict:
        sorts = {"-created": JobRow.created, "created": JobRow.created, "name": JobRow.name}
        with Session(self.engine) as session:
            found = page(session, JobRow, "job", query, sorts)
        return found

    def busy_runs(self) -> list[str]:
        """Runs with a stage running or queued: what the reaper looks at, without reading every record."""
        with Session(self.engine) as session:
            return list(session.scalars(select(RunRow.run).where(RunRow.state.in_(("running", "queued")))))

    def count_runs(self) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(RunRow)) or 0

    def drop_all_but(self, kind: str, keep: set[str]) -> int:
        """Remove the rows of `kind` whose id is not in `keep` (what a reindex did not find on disk), a
        chunk per transaction; returns how many went."""
        model = _MODELS[kind]
        key = getattr(model, kind)
        with Session(self.engine) as session:
            stale = sorted(set(session.scalars(select(key))) - keep)
        for start in range(0, len(stale), 500):
            chunk = stale[start : start + 500]

            def drop(session: Session, chunk=chunk) -> None:
                if kind == "run":
                    session.execute(delete(RunTag).where(RunTag.run.in_(chunk)))
                session.execute(delete(model).where(key.in_(chunk)))

            self._write(drop, f"{len(chunk)} {kind}s")
        return len(stale)


_indexes: dict[tuple[int, str], RunIndex] = {}
_lock = threading.Lock()


def memory_index() -> RunIndex:
    """A throw-away index in memory: what a listing falls back to when the real one cannot be read."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    migrate(engine)
    return RunIndex(engine)


def open_index(url: str) -> tuple[RunIndex, bool]:
    """The process's index for `url`, migrated on first use; (index, True) when its tables were just made.
    Engines are per process: a forked worker opens its own connections."""
    key = (os.getpid(), url)
    with _lock:
        if key in _indexes:
            return _indexes[key], False
        engine = create_engine(url, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            fresh = migrate(engine)
        except (OSError, SQLAlchemyError) as exc:  # a read-only data root: reads may still work
            log.warning("run index %s: cannot migrate (%s: %s)", engine.url, type(exc).__name__, exc)
            fresh = False
        _indexes[key] = RunIndex(engine)
        if not fresh:
            _indexes[key].analyze()  # statistics as of start-up; a reindex refreshes them
        return _indexes[key], fresh


def close_indexes() -> None:
    """Dispose of this process's engines (tests that drop a database, a process about to exit)."""
    with _lock:
        for (pid, _), index in list(_indexes.items()):
            if pid == os.getpid():
                index.engine.dispose()
        _indexes.clear()
