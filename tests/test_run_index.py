"""The run index on SQLite and on a real PostgreSQL: it follows every write of a record, pages through
filters and sorts without losing or repeating a run, refuses bad listings with a 422 and rebuilds from the
folders."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from fastapi.testclient import TestClient

from services.gateway.app import create
from services.gateway.cli import main
from shared.run_index import close_indexes
from shared.run_store import RunStore
from shared.schemas import ArtifactInfo, StageRecord, StageState
from shared.settings import Settings

POSTGRES = os.environ.get("MOTPIPE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def postgres_database():
    """A new, empty PostgreSQL database: (its URL, a function that drops it)."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    admin = sqlalchemy.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"motpipe_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"no PostgreSQL at {POSTGRES} (.ci/run starts one): {str(exc).splitlines()[0]}")

    def drop() -> None:
        close_indexes()
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()

    return POSTGRES.rsplit("/", 1)[0] + "/" + name, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, monkeypatch):
    """The index's URL for this test (None: SQLite in the data root), also seen by `motpipe runs`."""
    if request.param == "sqlite":
        yield None
        close_indexes()
        return
    url, drop = postgres_database()
    monkeypatch.setenv("MOTPIPE_DATABASE_URL", url)
    yield url
    drop()


@pytest.fixture
def api(tmp_path, database):
    settings = Settings(data_root=tmp_path / "data", database_url=database)
    client = TestClient(create(settings))
    return client, RunStore(settings.data_root, database)


def evaluated(store: RunStore, run_id: str, hota: float, tracker: str = "bytetrack", ball: float | None = None):
    """Give a run tracks and metrics as the stages record them (the index reads metrics.json)."""
    folder = store.run_dir(run_id)
    report = {"trackeval": {"HOTA": hota, "DetA": hota, "AssA": hota, "IDF1": hota / 2, "MOTA": hota - 1, "IDSW": 3}}
    if ball is not None:
        report["per_class"] = {"ball": {"trackeval": {"HOTA": ball}}, "player": {"trackeval": {"HOTA": hota}}}
    (folder / "metrics.json").write_text(json.dumps(report))

    def change(record) -> None:
        record.stages["track"] = StageRecord(state=StageState.succeeded, params={"tracker": tracker})
        record.stages["eval"] = StageRecord(state=StageState.succeeded)
        record.artifacts["metrics.json"] = ArtifactInfo(bytes=1, url="x")

    store.update(run_id, change)


def test_listing_pages_through_every_run_once_in_every_sort(api):
    client, store = api
    ids = []
    for i in range(23):
        run = store.create({"upload": f"match{i:02d}.mp4"}, name=f"match{i:02d}.mp4").run
        ids.append(run)
        if i % 2 == 0:
            evaluated(store, run, 0.5 + i / 100, "motrv2" if i % 4 == 0 else "bytetrack")
    for sort in ("-created", "created", "-hota", "-idf1", "-mota", "name"):
        seen, cursor = [], None
        while True:
            page = client.get("/runs", params={"limit": 5, "sort": sort, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["total"] == 23
            seen += [r["run"] for r in body["runs"]]
            cursor = body["next"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids) and len(seen) == 23, sort
        if sort == "-hota":  # best first, runs without metrics last
            listed = [r for r in client.get("/runs", params={"sort": "-hota", "limit": 23}).json()["runs"]]
            scores = [r["HOTA"] for r in listed if r["HOTA"] is not None]
            assert scores == sorted(scores, reverse=True) and len(scores) == 12 and listed[12]["HOTA"] is None
    assert [r["name"] for r in client.get("/runs", params={"sort": "name", "limit": 3}).json()["runs"]] == [
        "match00.mp4", "match01.mp4", "match02.mp4"]  # fmt: skip
    newest = client.get("/runs", params={"limit": 1}).json()["runs"][0]
    assert newest["run"] == ids[-1] and newest["video"] == "match22.mp4" and newest["HOTA"] == pytest.approx(0.72)
    assert newest["tracker"] == "bytetrack" and newest["state"] == "succeeded" and newest["IDSW"] == 3


def test_filters_count_what_they_match_and_search_is_plain_text(api):
    client, store = api
    a = store.create({"upload": "beach_100%.mp4"}, name="beach_100%.mp4").run
    b = store.create({"upload": "court.mp4"}, name="court.mp4").run
    c = store.create({"upload": "court2.mp4"}, name="court2.mp4").run
    evaluated(store, b, 0.8, "motrv2", ball=0.4)
    client.patch(f"/runs/{a}", json={"tags": ["ball", "night"], "note": "Robert'); DROP TABLE runs;--"})
    client.patch(f"/runs/{c}", json={"tags": ["ball"]})

    def listed(**params) -> list[str]:
        body = client.get("/runs", params=params).json()
        assert body["total"] == len(body["runs"]), body
        return sorted(r["run"] for r in body["runs"])

    assert listed(tag="ball") == sorted([a, c]) and listed(tag="night") == [a] and listed(tag="nope") == []
    assert (
        listed(tracker="motrv2") == [b]
        and listed(state="succeeded") == [b]
        and listed(state="pending") == sorted([a, c])
    )
    assert (
        listed(q="COURT") == sorted([b, c])
        and listed(q="100%") == [a]
        and listed(q="%") == [a]
        and listed(q="_") == [a]
    )
    assert listed(q="DROP TABLE runs") == [a] and listed(q="' OR 1=1 --") == []  # SQL in q is text
    assert client.get("/runs").json()["total"] == 3  # the table is still there
    assert client.get("/runs", params={"tracker": "motrv2"}).json()["runs"][0]["HOTA_ball"] == pytest.approx(0.4)
    child = store.create_tracking_child(b, "bytetrack score_threshold=0.4").run
    assert listed(parent=b) == [child]
    assert client.get(f"/runs/{b}").json()["children"] == [child]  # the record's shape is unchanged


@pytest.mark.parametrize(
    "params",
    [{"limit": -1}, {"limit": 0}, {"limit": 501}, {"limit": "many"}, {"sort": "-hota; DROP TABLE runs"},
     {"sort": "colour"}, {"cursor": "not-a-cursor"}, {"cursor": "eyJ4IjoxfQ"}, {"cursor": "x" * 600},
     {"q": "x" * 201}, {"state": "sleeping"}, {"parent": "../etc"}, {"tag": "x" * 65}],
)  # fmt: skip
def test_bad_listings_are_422_never_500(api, params):
    client, store = api
    store.create(name="one")
    answer = client.get("/runs", params=params)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]


def test_a_cursor_of_another_listing_is_refused(api):
    client, store = api
    for i in range(3):
        store.create(name=f"r{i}")
    cursor = client.get("/runs", params={"limit": 1}).json()["next"]
    assert client.get("/runs", params={"limit": 1, "cursor": cursor}).status_code == 200
    answer = client.get("/runs", params={"limit": 1, "cursor": cursor, "sort": "name"})
    assert answer.status_code == 422 and "cursor" in json.dumps(answer.json())
    assert client.get("/runs", params={"limit": 1, "cursor": cursor, "q": "r"}).status_code == 422


def test_the_index_follows_writes_and_reindex_rebuilds_it(api, capsys):
    client, store = api
    keep = store.create({"upload": "a.mp4"}, name="a.mp4").run
    gone = store.create({"upload": "b.mp4"}, name="b.mp4").run
    store.update(keep, lambda r: r.tags.append("keep"))
    assert client.delete(f"/runs/{gone}").status_code == 204
    assert [r["run"] for r in client.get("/runs", params={"tag": "keep"}).json()["runs"]] == [keep]
    assert client.get("/runs").json()["total"] == 1
    broken = store.create(name="broken").run
    (store.run_dir(broken) / "run.json").write_text("{not json")
    root = ["runs", "--data-root", str(store.root)]
    for _ in range(2):  # idempotent
        assert main([*root, "reindex"]) == 0
        out = capsys.readouterr().out
        assert "indexed 1 records" in out and f"skipped {store.run_dir(broken) / 'run.json'}" in out, out
        assert client.get("/runs").json()["total"] == 1
    assert main([*root, "list", "--tag", "keep"]) == 0
    assert keep in capsys.readouterr().out


def test_a_listing_during_a_reindex_still_sees_every_run_and_stale_rows_go(api, monkeypatch):
    import shutil

    client, store = api
    runs = {store.create({"upload": f"{i}.mp4"}, name=f"{i}.mp4").run for i in range(3)}
    removed = store.create(name="removed behind the index's back").run
    shutil.rmtree(store.run_dir(removed))
    seen_during = []
    original = store._index_batch

    def batch_and_look(index, kind, records):  # what a reader sees before each batch is written
        seen_during.append(index.count_runs())
        return original(index, kind, records)

    monkeypatch.setattr(store, "_index_batch", batch_and_look)
    assert store.reindex() == 3
    assert seen_during[0] == 4  # nothing was cleared first: the old rows stay until replaced
    assert {r["run"] for r in client.get("/runs").json()["runs"]} == runs  # the stale row went at the end


def test_a_new_index_is_filled_from_existing_folders(tmp_path):
    store = RunStore(tmp_path / "data")
    runs = {store.create(name=f"r{i}").run for i in range(3)}
    close_indexes()
    (tmp_path / "data" / "index.sqlite").unlink()  # an older data root, or a lost index
    client = TestClient(create(Settings(data_root=tmp_path / "data")))
    assert {r["run"] for r in client.get("/runs").json()["runs"]} == runs
    close_indexes()


def test_sweeps_and_jobs_are_listed_renamed_and_deleted(api, scene):
    client, store = api
    parent = store.create({"upload": "clip.mp4"}, name="clip.mp4").run
    (store.run_dir(parent) / "det_db.json").write_text("{}")
    store.start_stage(parent, "detect")
    store.succeed_stage(parent, "detect", ["det_db.json"])
    (store.run_dir(parent) / "gt.txt").write_bytes(scene.gt_txt.read_bytes())
    answer = client.post(
        "/sweeps", json={"run": parent, "tracker": "bytetrack", "grid": {"lost_track_buffer": [10, 20]}}
    )
    assert answer.status_code == 202, answer.text
    sweep = answer.json()["sweep"]
    listed = client.get("/sweeps").json()
    assert listed["total"] == 1 and listed["sweeps"][0]["name"].startswith("clip.mp4 · sweep bytetrack")
    assert listed["sweeps"][0]["progress"] == {"done": 0, "total": 2} and listed["sweeps"][0]["state"] == "pending"
    assert client.patch(f"/sweeps/{sweep}", json={"name": "buffers", "tags": ["ball"]}).status_code == 200
    assert client.get("/sweeps", params={"tag": "ball"}).json()["sweeps"][0]["name"] == "buffers"
    shown = client.get(f"/sweeps/{sweep}").json()  # the sweep itself says what it is called, as a run does
    assert (shown["name"], shown["tags"], shown["created"]) == ("buffers", ["ball"], listed["sweeps"][0]["created"])
    assert client.get("/sweeps", params={"q": "BUFF"}).json()["total"] == 1
    assert client.patch(f"/sweeps/{sweep}", json={"tags": ["x" * 65]}).status_code == 422
    answer = client.delete(f"/sweeps/{sweep}")  # its children are queued
    assert answer.status_code == 409 and "queued" in answer.json()["detail"]
    children = [r["run"] for r in client.get("/runs", params={"sweep": sweep}).json()["runs"]]
    assert len(children) == 2
    for child in children:
        store.update(child, lambda r: r.stages["track"].__setattr__("task", None))  # as if its task was dropped
    assert client.delete(f"/sweeps/{sweep}").status_code == 204
    assert client.get(f"/sweeps/{sweep}").status_code == 404 and client.get("/sweeps").json()["total"] == 0
    assert client.get("/runs").json()["total"] == 1  # its combinations went with it; the parent stays

    from services.trainer.jobs import write_job
    from shared.schemas import JobRecord

    jobs = store.root / "jobs"
    write_job(jobs / "00000000000000aa", JobRecord(job="00000000000000aa", name="motrv2 moderate", state="succeeded"))
    write_job(jobs / "00000000000000bb", JobRecord(job="00000000000000bb", model="dfine", state="pending",
                                                   task={"name": "detector.train", "args": []}))  # fmt: skip
    body = client.get("/train").json()
    assert body["total"] == 2 and body["jobs"][0]["job"] == "00000000000000bb"
    assert client.get("/train", params={"model": "motrv2"}).json()["jobs"][0]["name"] == "motrv2 moderate"
    assert client.patch("/train/00000000000000aa", json={"note": "best so far"}).json()["note"] == "best so far"
    assert client.get("/train", params={"q": "best so"}).json()["total"] == 1
    assert client.delete("/train/00000000000000bb").status_code == 409
    assert client.delete("/train/00000000000000aa").status_code == 204
    assert client.get("/train").json()["total"] == 1 and not (jobs / "00000000000000aa").exists()
    assert client.get("/train", params={"limit": 0}).status_code == 422
    assert client.get("/sweeps", params={"sort": "-hota"}).status_code == 422
