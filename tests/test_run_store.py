import json

import pytest

from shared.atomic import atomic_open
from shared.errors import InputError, NotFoundError
from shared.run_store import RunStore


def test_stage_life_cycle(tmp_path):
    store = RunStore(tmp_path)
    run = store.create({"upload": "a.mp4"}).run
    assert store.get(run).stages["detect"].state == "pending"
    store.start_stage(run, "detect", {"detector": "motion"}, total=10)
    store.set_progress(run, "detect", 4)
    record = store.get(run)
    assert record.stages["detect"].state == "running"
    assert (record.stages["detect"].progress.done, record.stages["detect"].progress.total) == (4, 10)
    (store.run_dir(run) / "det_db.json").write_text("{}")
    record = store.succeed_stage(run, "detect", ["det_db.json"])
    assert record.stages["detect"].state == "succeeded"
    assert record.stages["detect"].progress.done == 10
    assert record.artifacts["det_db.json"].bytes == 2
    assert json.loads((store.run_dir(run) / "run.json").read_text())["stages"]["detect"]["state"] == "succeeded"


def test_stage_cannot_succeed_without_its_artifact(tmp_path):
    store = RunStore(tmp_path)
    run = store.create().run
    store.start_stage(run, "track")
    with pytest.raises(FileNotFoundError):
        store.succeed_stage(run, "track", ["tracks.txt"])
    assert store.get(run).stages["track"].state == "running"


def test_failed_stage_keeps_reason(tmp_path):
    store = RunStore(tmp_path)
    run = store.create().run
    store.fail_stage(run, "detect", "video.mp4: truncated")
    assert store.get(run).stages["detect"].error == "video.mp4: truncated"


@pytest.mark.parametrize("bad", ["../etc", "0123456789abcdeg", "", "a" * 16 + "/x", "ABCDEF0123456789"])
def test_run_ids_are_confined(tmp_path, bad):
    with pytest.raises(NotFoundError):
        RunStore(tmp_path).get(bad)


def test_artifact_names_cannot_escape(tmp_path):
    store = RunStore(tmp_path)
    run = store.create().run
    for bad in ("../run.json", "/etc/passwd", "plots/../../x", ".hidden"):
        with pytest.raises(InputError):
            store.artifact_path(run, bad)


def test_atomic_write_leaves_old_content_on_failure(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half")
        raise RuntimeError("crash mid-write")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
