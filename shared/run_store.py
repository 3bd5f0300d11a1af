"""Runs on the filesystem: `<data root>/runs/<run id>/run.json` plus the run's artifacts.

`run.json` is rewritten atomically under an exclusive file lock (the API and several
worker processes update it), so readers see either the old or the new record. A stage
is marked `succeeded` only after its artifacts exist on disk (they were fsynced by
`shared.atomic` before being renamed into place).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from shared.atomic import atomic_write_text
from shared.errors import InputError, NotFoundError
from shared.run_index import RunIndex, index_url, job_row, memory_index, open_index, sweep_row
from shared.schemas import (
    MAX_NAME_CHARS,
    RUN_ID_RE,
    STAGES,
    ArtifactInfo,
    Progress,
    RunRecord,
    StageRecord,
    StageState,
    utcnow,
)

log = logging.getLogger("motpipe.run_store")
RESERVE = ".reserve"  # room held on the data root's disk so a failure can still be recorded when it fills
RESERVE_BYTES = 1 << 20
OUTPUT_STAGE = {"det_db.json": "detect", "tracks.txt": "track"}  # the stage each main output comes from
_ARTIFACT_RE = re.compile(r"^(plots/)?[A-Za-z0-9_][A-Za-z0-9_.-]*$")


GT_FILES = ("gt.txt", "gt.json")  # where a run keeps its ground truth, whichever format it came in


def link_or_copy(source: Path, target: Path) -> None:
    """A hard link (no second copy of a video or det_db), or a copy where the filesystem cannot link."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        raise NotFoundError(f"unknown run {run_id!r}")
    return run_id


def check_artifact_name(name: str) -> str:
    if not _ARTIFACT_RE.match(name) or ".." in name:
        raise InputError(f"bad artifact name {name!r}")
    return name


class RunStore:
    """Run folders plus their index (`shared.run_index`): every write of a `run.json` goes through
    `create`/`update`/`delete` here, which update the run's index row in the same call."""

    def __init__(self, root: str | os.PathLike, database_url: str | None = None):
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.database_url = index_url(self.root, database_url)

    @property
    def index(self) -> RunIndex:
        """The index, opened (and migrated) on first use; a new index is filled from the folders at once."""
        index, fresh = open_index(self.database_url)
        if fresh and any(self.runs_dir.glob("*/run.json")):
            self.reindex(index)
        return index

    def runs_page(self, query, lost_before: float | None = None) -> dict:
        """A page of run summaries from the index; when the index cannot be read (a read-only or broken data
        root, a database that is down) the page is built from the folders instead: slower, never wrong."""
        try:
            return self.index.runs(query, lost_before)
        except SQLAlchemyError as exc:
            log.warning("run index unreadable (%s: %s): listing from the folders", type(exc).__name__, exc)
            fallback = memory_index()
            self.reindex(fallback)
            return fallback.runs(query, lost_before)

    def reindex(self, index: RunIndex | None = None, report: Callable[[str, str], None] | None = None) -> int:
        """Rebuild the index from the run, sweep and job folders (idempotent); a record that cannot be read
        is reported (`report(path, reason)`) and skipped. Returns the number of records indexed. Rows are
        replaced in place and rows of records no longer on disk dropped at the end, so a listing during a
        reindex never sees a half-empty index."""
        from shared.schemas import JobRecord, SweepRecord

        index = index or self.index
        count = 0
        for kind, model in (("run", RunRecord), ("sweep", SweepRecord), ("job", JobRecord)):
            batch, seen = [], set()
            for path in sorted((self.root / f"{kind}s").glob(f"*/{kind}.json")):
                try:
                    batch.append(model.model_validate_json(path.read_text(encoding="utf-8")))
                except (OSError, ValueError) as exc:
                    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    if report:
                        report(str(path), reason)
                    continue
                seen.add(getattr(batch[-1], kind))
                if len(batch) >= 1000:
                    count += self._index_batch(index, kind, batch)
                    batch = []
            count += self._index_batch(index, kind, batch)
            index.drop_all_but(kind, seen)
        index.analyze(vacuum=True)
        return count

    def _index_batch(self, index: RunIndex, kind: str, records: list) -> int:
        if kind == "run":
            index.put_runs([(r, self.runs_dir / r.run) for r in records])
        elif kind == "sweep":
            index.put_rows("sweep", [sweep_row(r) for r in records])
        else:
            index.put_rows("job", [job_row(r) for r in records])
        return len(records)

    # -- paths -------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        folder = self.runs_dir / check_run_id(run_id)
        if not (folder / "run.json").is_file():
            raise NotFoundError(f"unknown run {run_id!r}")
        return folder

    def artifact_path(self, run_id: str, name: str) -> Path:
        return self.run_dir(run_id) / check_artifact_name(name)

    # -- records -----------------------------------------------------------------------
    def create(self, inputs: dict | None = None, name: str = "", parent: str | None = None) -> RunRecord:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        while True:
            run_id = uuid.uuid4().hex[:16]
            folder = self.runs_dir / run_id
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        record = RunRecord(run=run_id, inputs=inputs or {}, stages={s: StageRecord() for s in STAGES},
                           name=name[:MAX_NAME_CHARS], parent=parent)  # fmt: skip
        atomic_write_text(folder / "run.json", record.model_dump_json(indent=1))
        self.index.put_run(record, folder)
        return record

    def create_child(self, parent_id: str, change: str, inputs: dict | None = None, share: tuple = ()) -> RunRecord:
        """A run that starts from `parent_id`: named after it plus `change`, recorded as its child, with the
        parent's files named in `share` hard-linked in (copied across filesystems). Ground truth is not
        shared: a child without its own reads its parent's (`gt_file`), also one uploaded later."""
        parent = self.get(parent_id)
        source = self.run_dir(parent_id)
        base = parent.name or Path(str(parent.inputs.get("upload") or parent.inputs.get("path") or parent_id)).name
        child = self.create({**parent.inputs, **(inputs or {})}, f"{base} · {change}", parent_id)
        folder = self.run_dir(child.run)
        for name in share:
            if (source / name).is_file():
                link_or_copy(source / name, folder / name)
        self.update(parent_id, lambda r: r.children.append(child.run))
        return child

    def create_tracking_child(self, parent_id: str, change: str, inputs: dict | None = None) -> RunRecord:
        """A child holding the parent's det_db (and classes), its detect stage done with the parent's
        parameters: what tracking again or a sweep's combination starts from."""
        detect = self.get(parent_id).stages["detect"]
        child = self.create_child(parent_id, change, inputs, share=("det_db.json", "det_db.classes.json"))
        folder = self.run_dir(child.run)
        present = [n for n in ("det_db.json", "det_db.classes.json") if (folder / n).is_file()]
        self.start_stage(child.run, "detect", detect.params)
        self.succeed_stage(child.run, "detect", present, detect.params)
        return self.get(child.run)

    def gt_file(self, run_id: str) -> Path | None:
        """The run's ground truth: its own, else the nearest ancestor's."""
        seen = set()
        while run_id and run_id not in seen:
            seen.add(run_id)
            try:
                folder = self.run_dir(run_id)
            except NotFoundError:
                return None
            own = next((folder / n for n in GT_FILES if (folder / n).is_file()), None)
            if own is not None:
                return own
            run_id = self.get(run_id).parent
        return None

    def descendants_without_gt(self, run_id: str) -> list[str]:
        """Children (and theirs) that read `run_id`'s ground truth."""
        out, todo = [], list(self.get(run_id).children)
        while todo:
            child = todo.pop()
            try:
                folder = self.run_dir(child)
            except NotFoundError:
                continue
            if not any((folder / n).is_file() for n in GT_FILES):
                out.append(child)
                todo += self.get(child).children
        return out

    def busy_stage(self, run_id: str) -> str | None:
        """A stage that runs or is queued (its task recorded), if any."""
        for name, stage in self.get(run_id).stages.items():
            if stage.state == StageState.running or (stage.state == StageState.pending and stage.task):
                return name
        return None

    def delete(self, run_id: str) -> None:
        """Remove a run; its children keep working: its ground truth is handed down to those that read it,
        and they stop naming it as their parent's child list holder."""
        record = self.get(run_id)
        gt = self.gt_file(run_id) if record.children else None
        for child in record.children:
            try:
                folder = self.run_dir(child)
            except NotFoundError:
                continue
            if gt is not None and not any((folder / n).is_file() for n in GT_FILES):
                link_or_copy(gt, folder / gt.name)
                self.update(child, lambda r: self.record_artifacts(r, self.run_dir(r.run), [gt.name]))
        if record.parent:
            with contextlib.suppress(NotFoundError):
                self.update(record.parent, lambda r: r.children.remove(run_id) if run_id in r.children else None)
        shutil.rmtree(self.run_dir(run_id))
        self.index.drop_run(run_id)

    def get(self, run_id: str) -> RunRecord:
        path = self.run_dir(run_id) / "run.json"
        return RunRecord.model_validate_json(path.read_text(encoding="utf-8"))

    def list(self, skipped: list[str] | None = None) -> list[RunRecord]:
        """Every readable run, newest first; unreadable records are left out (their ids go to `skipped`)."""
        if not self.runs_dir.is_dir():
            return []
        records = []
        for folder in self.runs_dir.iterdir():
            if RUN_ID_RE.match(folder.name) and (folder / "run.json").is_file():
                try:
                    records.append(self.get(folder.name))
                except (OSError, ValueError) as exc:  # one broken record must not hide every other run
                    log.warning("skipping unreadable %s: %s", folder / "run.json", exc)
                    if skipped is not None:
                        skipped.append(folder.name)
        return sorted(records, key=lambda r: r.created, reverse=True)

    def busy(self) -> list[RunRecord]:
        """Records of the runs the index holds as running or queued (unreadable ones left out)."""
        records = []
        for run_id in self.index.busy_runs():
            with contextlib.suppress(OSError, ValueError, NotFoundError):
                records.append(self.get(run_id))
        return records

    @contextlib.contextmanager
    def _locked(self, run_id: str) -> Iterator[Path]:
        folder = self.run_dir(run_id)
        with open(folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield folder
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, run_id: str, change: Callable[[RunRecord], None]) -> RunRecord:
        with self._locked(run_id) as folder:
            record = RunRecord.model_validate_json((folder / "run.json").read_text(encoding="utf-8"))
            change(record)
            atomic_write_text(folder / "run.json", record.model_dump_json(indent=1))
            self.index.put_run(record, folder)
            return record

    # -- stage life cycle --------------------------------------------------------------
    def start_stage(self, run_id: str, stage: str, params: dict | None = None, total: int | None = None) -> RunRecord:
        def change(record: RunRecord) -> None:
            previous = record.stages.get(stage) or StageRecord()
            record.stages[stage] = StageRecord(
                state=StageState.running,
                progress=Progress(done=0, total=total),
                params=params if params is not None else previous.params,
                attempts=previous.attempts + 1,
                started=utcnow(),
                heartbeat=utcnow(),
                task=previous.task,
            )

        return self.update(run_id, change)

    def set_progress(self, run_id: str, stage: str, done: int, total: int | None = None) -> None:
        def change(record: RunRecord) -> None:
            current = record.stages.setdefault(stage, StageRecord())
            current.progress = Progress(done=done, total=total if total is not None else current.progress.total)

        self.update(run_id, change)

    def record_artifacts(self, record: RunRecord, folder: Path, names: list[str]) -> None:
        for name in names:
            path = folder / check_artifact_name(name)
            if not path.is_file():
                raise FileNotFoundError(f"artifact {name} was not written")
            record.artifacts[name] = ArtifactInfo(bytes=path.stat().st_size, url=f"/runs/{record.run}/artifacts/{name}")

    def forget_derived(self, record: RunRecord, folder: Path) -> None:
        """Drop metrics, plots and the overlay made from earlier tracks or ground truth (call inside `update`)."""
        for name in [n for n in record.artifacts if n.startswith(("metrics", "plots/", "overlay"))]:
            record.artifacts.pop(name)
            (folder / name).unlink(missing_ok=True)

    def succeed_stage(self, run_id: str, stage: str, artifacts: list[str], params: dict | None = None) -> RunRecord:
        with self._locked(run_id) as folder:
            record = RunRecord.model_validate_json((folder / "run.json").read_text(encoding="utf-8"))
            self.record_artifacts(record, folder, artifacts)
            current = record.stages.setdefault(stage, StageRecord())
            current.state = StageState.succeeded
            current.error = None
            current.finished = utcnow()
            if current.progress.total is not None:
                current.progress.done = current.progress.total
            if params:
                current.params.update(params)
            atomic_write_text(folder / "run.json", record.model_dump_json(indent=1))
            self.index.put_run(record, folder)
            return record

    def output_missing(self, run_id: str, name: str) -> None:
        """An artifact the record lists is gone from disk: drop it, and fail the stage that wrote it so the
        record no longer says `succeeded` for an output that does not exist."""
        producer = OUTPUT_STAGE.get(name)

        def change(record: RunRecord) -> None:
            record.artifacts.pop(name, None)
            stage = record.stages.get(producer) if producer else None
            if stage is not None and stage.state == StageState.succeeded:
                stage.state = StageState.failed
                stage.error = f"its output {name} is missing (deleted after the stage finished); run the stage again"

        self.update(run_id, change)

    def fail_stage(self, run_id: str, stage: str, error: str) -> RunRecord:
        def change(record: RunRecord) -> None:
            current = record.stages.setdefault(stage, StageRecord())
            current.state = StageState.failed
            current.error = error
            current.finished = utcnow()

        return self.update(run_id, change)

    def fail_stage_on_full_disk(self, run_id: str, stage: str, error: str) -> bool:
        """`fail_stage` that still works when the disk is full: on ENOSPC the reserve is released and the
        write tried once more. False when the record cannot be written at all (a read-only data root): the
        stage's heartbeat then stops, and readers show it failed (`shown`)."""
        for attempt in range(2):
            try:
                self.fail_stage(run_id, stage, error if attempt == 0 else f"{error} (the disk was full)")
                return True
            except OSError as exc:
                if exc.errno != errno.ENOSPC or not self.release_reserve():
                    log.error("cannot record that stage %s of run %s failed (%s): %s", stage, run_id, error, exc)
                    return False
        return False

    def keep_reserve(self) -> None:
        """Hold RESERVE_BYTES in `<root>/.reserve` when there is room (workers call this at start and then
        periodically, so the room comes back once the disk has space again)."""
        path = self.root / RESERVE
        if path.is_file() and path.stat().st_size == RESERVE_BYTES:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(bytes(RESERVE_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                path.unlink()

    def release_reserve(self) -> bool:
        try:
            (self.root / RESERVE).unlink()
        except OSError:
            return False
        log.warning("the data root's disk is full: released the reserve to record a failure")
        return True

    def reset_stage(
        self, run_id: str, stage: str, params: dict, task: dict | None = None, keep_attempts: bool = True
    ) -> RunRecord:
        """Queue a stage again: pending, with new parameters (and the task that will run it), error cleared;
        `keep_attempts=False` for a new request (its attempts count from 0)."""

        def change(record: RunRecord) -> None:
            previous = record.stages.get(stage) or StageRecord()
            attempts = previous.attempts if keep_attempts else 0
            record.stages[stage] = StageRecord(params=params, attempts=attempts, task=task or previous.task,
                                               queued=utcnow())  # fmt: skip

        return self.update(run_id, change)

    def beat(self, run_id: str, stage: str) -> None:
        def change(record: RunRecord) -> None:
            current = record.stages.get(stage)
            if current is not None and current.state == StageState.running:
                current.heartbeat = utcnow()

        self.update(run_id, change)


def shown(record: RunRecord, lost_after_s: float, root: Path | None = None) -> RunRecord:
    """The record as readers get it: a `running` stage whose heartbeat is older than `lost_after_s` reads as
    `failed` with the reason, even when no one could write that (a worker gone with no reaper alive, or a
    data root that stopped accepting writes); with `root`, paths under the data root are shown relative to
    it (the server's own layout is not the caller's business). The file itself is left as it is."""
    if root is not None:
        prefix = json.dumps(str(root.resolve()) + "/")[1:-1]
        record = RunRecord.model_validate_json(record.model_dump_json().replace(prefix, ""))
    cutoff = utcnow().timestamp() - lost_after_s
    for name, stage in record.stages.items():
        if stage.state == StageState.running and stage.heartbeat and stage.heartbeat.timestamp() < cutoff:
            record.stages[name] = stage.model_copy(
                update={
                    "state": StageState.failed,
                    "error": f"no heartbeat since {stage.heartbeat:%Y-%m-%d %H:%M:%S} UTC: its worker is gone or "
                    "cannot write the run record (disk full or read-only?)",
                }
            )
    return record


class ProgressReporter:
    """Writes progress to run.json at most every `interval` seconds (plus the final count)."""

    def __init__(self, store: RunStore, run_id: str, stage: str, total: int | None, interval: float = 0.5):
        self.store, self.run_id, self.stage, self.total, self.interval = store, run_id, stage, total, interval
        self._last = 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        now = time.monotonic()
        if now - self._last >= self.interval or (self.total is not None and done >= self.total):
            self._last = now
            self.store.set_progress(self.run_id, self.stage, done, self.total)
