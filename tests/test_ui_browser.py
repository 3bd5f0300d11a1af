"""The /ui dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)
against the real stack: upload through the form, watch progress, track, upload ground truth, read metrics
and plots, open the overlay, start a sweep and read its leaderboard; no console errors; usable at 1280x800
and on a narrow window; login with a token that never appears in a URL."""

from __future__ import annotations

import shutil
import time

import httpx
import numpy as np
import pytest

from shared.synth import render_scene

pytestmark = pytest.mark.service


def _driver(width: int = 1280, height: int = 800):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from scripts.ui_screenshots import chromium_driver

    return chromium_driver(width, height)


def table_cells(driver, rows: str) -> list[list[str]]:
    """The text of each cell (or, without cells, of the element itself) of the elements matching `rows`, read in
    one script: pages that poll replace their rows, so an element held across two WebDriver calls may be gone."""
    script = ("return [...document.querySelectorAll(arguments[0])].map(row => { const cells = "
              "[...row.querySelectorAll('td')].map(td => td.textContent.trim()); "
              "return cells.length ? cells : [row.textContent.trim()]; })")  # fmt: skip
    return driver.execute_script(script, rows)


def listed_runs(driver) -> list[str]:
    """The runs page's rows (their run ids), read in one script (see `table_cells`)."""
    return driver.execute_script("return [...document.querySelectorAll('#runs tbody tr')].map(r => r.dataset.run)")


def wait_for(driver, script: str, timeout: float = 120, what: str = ""):
    """Poll a JavaScript expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return {script}")
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what or script} on {driver.current_url}")


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def no_page_overflow(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_upload_track_metrics_overlay_and_sweep_in_a_browser(stack, tmp_path):
    scene = render_scene(tmp_path / "clip", frames=40, seed=5, size=(640, 360))
    stack.start_gateway()
    stack.start_worker("w1")
    driver = _driver()
    try:
        driver.get(f"{stack.url}/ui/upload")
        driver.find_element("name", "file").send_keys(str(scene.video))
        sequence = driver.find_element("name", "sequence")
        sequence.clear()
        sequence.send_keys("court")
        driver.find_element("css selector", "#upload button[type=submit]").click()
        wait_for(driver, "location.pathname.startsWith('/ui/runs/')", 60, "the run page")
        run = driver.current_url.rsplit("/", 1)[1]
        detect = "document.querySelector('#stages tr[data-stage=detect] .state')"
        wait_for(driver, f"{detect}.textContent === 'succeeded'", 120, "detect succeeded")
        assert "40/40" in driver.find_element("css selector", "#stages tr[data-stage=detect]").text

        driver.find_element("css selector", "#track button[type=submit]").click()
        wait_for(driver, "document.querySelector('#stages tr[data-stage=track] .state').textContent === 'succeeded'",
                 120, "track succeeded")  # fmt: skip
        driver.find_element("css selector", "#gt input[name=file]").send_keys(str(scene.gt_txt))
        driver.find_element("css selector", "#gt button[type=submit]").click()
        wait_for(driver, "document.querySelector('#gt .status').textContent.includes('boxes')", 30, "gt stored")
        wait_for(driver, "document.querySelector('#metrics table') !== null", 60, "the metrics tables")
        metrics = driver.find_element("id", "metrics").text
        expected = httpx.get(f"{stack.url}/eval/{run}").json()["trackeval"]["HOTA"]
        assert "HOTA" in metrics and f"{expected:.4f}" in metrics and "framewise" in metrics
        wait_for(driver, "[...document.querySelectorAll('#plots img')].length >= 4 && "
                 "[...document.querySelectorAll('#plots img')].every(i => i.complete && i.naturalWidth > 0)",
                 60, "plots loaded")  # fmt: skip
        wait_for(driver, "document.querySelector('#doctor').textContent.length > 10", 30, "doctor findings")

        driver.find_element("id", "overlay-button").click()
        state = wait_for(driver, "(v => v.readyState >= 1 ? 'ready' : v.error ? 'error ' + v.error.code : '')"
                         "(document.getElementById('overlay'))", 180, "overlay video")  # fmt: skip
        overlay = httpx.get(f"{stack.url}/runs/{run}/overlay.mp4", timeout=60)
        assert overlay.status_code == 200 and overlay.content[4:8] == b"ftyp"
        if state != "ready":  # a Chromium without H.264 can still not play it; the file itself is checked above
            assert state == "error 4", state

        grid = driver.find_element("css selector", "#sweep textarea[name=grid]")
        grid.clear()
        grid.send_keys('{"score_threshold": [0.2, 0.97], "minimum_consecutive_frames": [1, 20]}')
        driver.find_element("css selector", "#sweep button[type=submit]").click()
        wait_for(driver, "location.pathname.startsWith('/ui/sweeps/')", 30, "the sweep page")
        wait_for(driver, "document.getElementById('sweep-state').textContent === 'succeeded'", 180, "sweep done")
        rows = table_cells(driver, "#leaderboard tbody tr")  # the page redraws its rows while it polls
        assert len(rows) == 4
        heading = driver.find_element("tag name", "h1").text  # the sweep's name, its id beside it
        assert heading.startswith("synth.mp4 · sweep bytetrack score_threshold, minimum_consecutive_frames "), heading
        hotas = [float(cells[4]) for cells in rows]
        balls = [cells[-1] for cells in rows]  # the motion det_db's classes
        assert all(balls) and float(balls[0]) > 0, balls
        assert hotas == sorted(hotas, reverse=True)
        assert "score_threshold=0.2, minimum_consecutive_frames=1" in " ".join(rows[0])
        wait_for(driver, "document.querySelectorAll('#sweep-plots img').length >= 1", 30, "sweep plots")
        assert console_errors(driver) == []

        pages = ["/ui", f"/ui/runs/{run}", "/ui/upload", f"/ui/compare?a={run}&b={run}", "/ui/train", "/ui/sweeps",
                 driver.current_url.split(stack.url, 1)[1]]  # fmt: skip
        for width, height in ((1280, 800), (390, 844)):
            driver.set_window_size(width, height)
            for page in pages:
                driver.get(stack.url + page)
                time.sleep(1.0)
                assert no_page_overflow(driver), f"{page} overflows at {width}px"
                assert console_errors(driver) == [], page
        driver.get(f"{stack.url}/ui")
        wait_for(driver, f"document.querySelector('#runs tr[data-run=\"{run}\"]') !== null", 10, "the run listed")
        listed = listed_runs(driver)
        created = [r["run"] for r in httpx.get(f"{stack.url}/runs").json()["runs"]]
        assert listed == created  # newest first, sweep children included
    finally:
        driver.quit()


def test_login_keeps_the_token_out_of_urls(stack):
    stack.env["MOTPIPE_API_TOKEN"] = "s3cret-token"
    stack.start_gateway()
    driver = _driver(390, 844)
    try:
        driver.get(f"{stack.url}/ui")
        assert driver.current_url.endswith("/ui/login")
        assert httpx.get(f"{stack.url}/runs").status_code == 401
        driver.find_element("name", "token").send_keys("wrong\n")
        wait_for(driver, "document.querySelector('.error') !== null", 10, "the error")
        driver.find_element("name", "token").send_keys("s3cret-token\n")
        wait_for(driver, "location.pathname === '/ui'", 10, "the runs page")
        wait_for(driver, "document.querySelector('#runs tbody tr') !== null", 10, "the runs table")
        assert "No runs yet" in driver.find_element("id", "runs").text  # the page's API calls were authorised
        assert "s3cret-token" not in driver.current_url
        cookie = driver.get_cookie("motpipe_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and "s3cret-token" not in cookie["value"]
        assert console_errors(driver) == []
        driver.find_element("css selector", "header button.link").click()
        wait_for(driver, "location.pathname === '/ui/login'", 10, "logged out")
    finally:
        driver.quit()


def test_the_track_form_offers_each_trackers_knobs_and_the_page_shows_a_threshold_warning(stack, tmp_path):
    """The track form shows the chosen tracker's knobs with their defaults and sends what was typed; a det_db
    whose scores all fall below the tracker's threshold gives a warning on the run page, live, no reload."""
    from selenium.webdriver.support.ui import Select

    from shared.formats.det_db import read_det_db, write_det_db
    from tests.stack import upload

    scene = render_scene(tmp_path / "clip", frames=20, seed=5, size=(320, 180))
    stack.start_gateway()
    stack.start_worker("w1")
    run = upload(stack, scene.video, "weak")
    assert stack.wait_stage(run, "detect")["stages"]["detect"]["state"] == "succeeded"
    path = stack.root / "runs" / run / "det_db.json"
    weak = {key: rows.copy() for key, rows in read_det_db(path).items()}
    for rows in weak.values():
        rows[:, 4] = 0.3  # a weak detector: every score below ByteTrack's 0.5
    write_det_db(path, weak)
    driver = _driver()
    try:
        driver.get(f"{stack.url}/ui/runs/{run}")
        visible = (
            "[...document.querySelectorAll('#track fieldset.knobs')].filter(f => !f.hidden).map(f => f.dataset.tracker)"
        )
        assert wait_for(driver, visible, 10) == ["bytetrack"]
        buffer = driver.find_element("css selector", "fieldset[data-tracker=bytetrack] input[name=lost_track_buffer]")
        assert buffer.get_attribute("placeholder") == "default 30"
        tracker = Select(driver.find_element("css selector", "#track select[name=tracker]"))
        tracker.select_by_visible_text("motrv2")
        assert wait_for(driver, visible, 10) == ["motrv2"]
        tracker.select_by_visible_text("bytetrack")
        buffer.send_keys("12")
        driver.find_element("css selector", "#track button[type=submit]").click()
        track = "document.querySelector('#stages tr[data-stage=track] .state').textContent"
        wait_for(driver, f"{track} === 'succeeded'", 120, "track succeeded")
        warning = wait_for(driver, "(document.querySelector('#notes li.warning') || {}).textContent", 30, "warning")
        assert "no tracks" in warning and "score_threshold" in warning and "0.5" in warning, warning
        record = stack.run(run)
        assert record["stages"]["track"]["params"]["options"] == {"lost_track_buffer": 12}
        assert any(n.startswith("warning") for n in record["stages"]["track"]["notes"])
        assert console_errors(driver) == []
    finally:
        driver.quit()


def test_the_dashboard_is_a_notebook(stack, tmp_path):
    """Rename and tag from the run page, track again from its form (the child appears, live, with its own
    metrics; the parent's stay byte-identical), filter by a tag chip, page through 50+ runs, watch a row
    change without reloading, compare runs with better/worse marked, delete a run."""
    from shared.run_store import RunStore
    from tests.stack import upload

    scene = render_scene(tmp_path / "clip", frames=24, seed=6, size=(320, 180))
    stack.start_gateway()
    stack.start_worker("w1")
    run = upload(stack, scene.video, "nb")
    assert stack.wait_stage(run, "detect")["stages"]["detect"]["state"] == "succeeded"
    assert httpx.post(f"{stack.url}/track", json={"run": run}, timeout=10).status_code == 202
    assert stack.wait_stage(run, "track")["stages"]["track"]["state"] == "succeeded"
    with open(scene.gt_txt, "rb") as handle:
        assert httpx.post(f"{stack.url}/runs/{run}/gt", files={"file": ("gt.txt", handle)}).status_code == 201
    first = httpx.get(f"{stack.url}/eval/{run}", timeout=60).json()["trackeval"]["HOTA"]
    metrics = stack.root / "runs" / run / "metrics.json"
    stored = metrics.read_bytes()
    driver = _driver()
    try:
        driver.get(f"{stack.url}/ui/runs/{run}")
        driver.find_element("css selector", "#notebook summary").click()
        name = driver.find_element("css selector", "#edit input[name=name]")
        name.clear()
        name.send_keys("match 3, baseline")
        driver.find_element("css selector", "#edit input[name=tags]").send_keys("ball, night")
        driver.find_element("css selector", "#edit button[type=submit]").click()
        wait_for(driver, "document.querySelector('#edit .status').textContent === 'saved'", 10, "saved")
        assert driver.find_element("id", "run-name").text == "match 3, baseline"
        assert [cells[0] for cells in table_cells(driver, "#tags .chip")] == ["ball", "night"]
        assert stack.run(run)["tags"] == ["ball", "night"] and stack.run(run)["name"] == "match 3, baseline"

        driver.execute_script("window.notReloaded = true")
        knob = "fieldset[data-tracker=bytetrack] input[name=minimum_consecutive_frames]"
        driver.find_element("css selector", knob).send_keys("10")
        driver.find_element("css selector", "#track button[type=submit]").click()
        link = wait_for(driver, "(document.querySelector('#track .status a') || {}).textContent", 10, "the child link")
        child = link.strip()
        status = "document.querySelector('#track .status').textContent"
        result = wait_for(driver, f"(t => t.includes('HOTA') && t)({status})", 120, "the child's result")
        child_hota = httpx.get(f"{stack.url}/eval/{child}", timeout=30).json()["trackeval"]["HOTA"]
        shown_hota = float(result.split("HOTA ", 1)[1].split(",", 1)[0])
        assert shown_hota == pytest.approx(child_hota, abs=1e-4) and child_hota != first and child_hota > 0
        wait_for(
            driver, f"document.querySelector('#children a[href=\"/ui/runs/{child}\"]') !== null", 10, "child listed"
        )
        assert driver.execute_script("return window.notReloaded === true")  # all of it without a reload
        assert metrics.read_bytes() == stored  # the parent's metrics never change
        assert stack.run(child)["parent"] == run and stack.run(child)["name"].startswith("match 3, baseline · ")

        store = RunStore(stack.root)  # 55 more runs, written as a worker would write them
        extra = [store.create({"upload": f"old{i:02d}.mp4"}, name=f"old{i:02d}.mp4").run for i in range(55)]
        driver.get(f"{stack.url}/ui")
        rows = lambda: listed_runs(driver)  # noqa: E731
        assert len(rows()) == 50 and driver.find_element("id", "total").text == "57 runs"
        driver.find_element("id", "next-page").click()
        wait_for(driver, "location.search.includes('cursor=')", 10, "page 2")
        assert len(rows()) == 7 and run in rows() and child in rows()  # the oldest two are the tracked ones
        assert driver.find_elements("id", "next-page") == []
        row = f'#runs tr[data-run="{run}"]'
        assert f"{first:.4f}" in driver.execute_script(f"return document.querySelector('{row}').textContent")
        driver.execute_script(f"document.querySelector('{row} .chip').click()")  # the tag chip "ball" filters
        wait_for(driver, "location.search.includes('tag=ball')", 10, "tag filter")
        assert rows() == [run] and driver.find_element("id", "total").text == "1 run"
        assert "tag: ball" in driver.find_element("id", "chips").text

        driver.get(f"{stack.url}/ui?q=old0")
        driver.execute_script("window.notReloaded = true")
        assert len(rows()) == 10
        store.update(extra[3], lambda r: setattr(r, "name", "old03 renamed elsewhere"))
        wait_for(
            driver, "document.querySelector('#runs').textContent.includes('old03 renamed elsewhere')", 15, "live row"
        )
        assert driver.execute_script("return window.notReloaded === true")

        driver.set_window_size(900, 800)  # a laptop's half screen: the long child name must wrap, not widen the table
        driver.get(f"{stack.url}/ui/compare?runs={run},{child}")
        wait_for(
            driver, "document.querySelector('#comparison tr[data-metric=\"trackeval.HOTA\"]') !== null", 30, "compare"
        )
        hota_row = driver.find_element("css selector", '#comparison tr[data-metric="trackeval.HOTA"]').text
        verdict = "▲" if child_hota > first else "▼"
        assert f"{first:.4f}" in hota_row and f"{child_hota:.4f}" in hota_row and verdict in hota_row
        wide = "[...document.querySelectorAll('#comparison .scroll')].filter(s => s.scrollWidth > s.clientWidth).length"
        assert driver.execute_script(f"return {wide}") == 0  # long names wrap: nothing to scroll sideways
        idsw = driver.find_elements("css selector", '#comparison tr[data-metric="trackeval.IDSW"] small')
        assert all(s.get_attribute("class") in ("better", "worse", "muted") for s in idsw)
        wait_for(driver, "[...document.querySelectorAll('.compare-plots img')].length === 4 && "
                 "[...document.querySelectorAll('.compare-plots img')].every(i => i.complete && i.naturalWidth > 0)",
                 60, "plots side by side")  # fmt: skip

        driver.set_window_size(1280, 800)
        driver.get(f"{stack.url}/ui/runs/{extra[0]}")
        driver.find_element("css selector", "#notebook summary").click()
        driver.find_element("id", "delete").click()
        driver.switch_to.alert.accept()
        wait_for(driver, "location.pathname === '/ui'", 10, "back to the runs")
        assert httpx.get(f"{stack.url}/runs/{extra[0]}").status_code == 404
        assert extra[0] not in rows() and driver.find_element("id", "total").text == "56 runs"
        assert console_errors(driver) == []
    finally:
        driver.quit()


def _tracked_run(store, scene, tracks, name: str, parent: str | None = None) -> str:
    """A run of `scene`'s video with its ground truth and `tracks` (track stage done): what the review page shows."""
    import dataclasses
    import shutil

    from shared.formats.mot_txt import write_mot
    from shared.video import probe_video

    info = dataclasses.asdict(probe_video(scene.video))
    run = store.create({"upload": "clip.mp4", "video": info}, name=name, parent=parent).run
    folder = store.run_dir(run)
    shutil.copyfile(scene.video, folder / "input.mp4")
    store.update(run, lambda r: r.inputs.update(frames=str(folder / "input.mp4")))
    shutil.copyfile(scene.gt_txt, folder / "gt.txt")
    write_mot(folder / "tracks.txt", tracks)
    store.start_stage(run, "track", {"tracker": "bytetrack"})
    store.succeed_stage(run, "track", ["tracks.txt"])
    return run


def test_the_review_page_jumps_to_an_id_switch_and_draws_its_boxes(stack, tmp_path):
    """A run whose tracks switch one player's id at a known frame: `#next-idsw` moves `#review[data-frame]`
    there once the video shows it, and the switched track's box and the switch marker are drawn."""
    import dataclasses

    from services.evaluator.events import clear_events
    from shared.formats.mot_txt import read_mot
    from shared.run_store import RunStore
    from shared.video import probe_video

    scene = render_scene(tmp_path / "clip", frames=40, seed=7, size=(480, 270))
    gt = read_mot(scene.gt_txt)
    tracks = dataclasses.replace(gt, id=np.where((gt.id == 2) & (gt.frame >= 20), 99, gt.id))
    (switch,) = [e for e in clear_events(gt, tracks) if e["kind"] == "idsw"]
    info = probe_video(scene.video)
    run = _tracked_run(RunStore(stack.root), scene, tracks, "switch at 20")
    stack.start_gateway()
    window = httpx.get(f"{stack.url}/runs/{run}/boxes", params={"from": 19, "to": 21}).json()
    assert sorted(window["frames"]) == ["19", "20", "21"]
    assert 99 in [t[0] for t in window["frames"]["20"]["tracks"]] and 99 not in [
        t[0] for t in window["frames"]["19"]["tracks"]
    ]
    assert httpx.get(f"{stack.url}/runs/{run}/boxes", params={"from": 1, "to": 2001}).status_code == 400
    assert httpx.get(f"{stack.url}/runs/{run}/video").content[4:8] == b"ftyp"
    driver = _driver()
    try:
        driver.get(f"{stack.url}/ui/runs/{run}/review")
        wait_for(driver, "document.getElementById('event-counts').textContent.includes('1 ID switches')", 30, "events")
        assert driver.find_element("id", "review").get_attribute("data-frame") == "1"
        driver.find_element("id", "next-idsw").click()
        wait_for(driver, f"document.getElementById('review').dataset.frame === '{switch['frame']}'", 20, "the switch")
        shown = driver.execute_script("return document.getElementById('review-video').currentTime") * info.fps
        assert abs(shown - (switch["frame"] - 0.5)) < 0.5  # the video itself is at that frame (it can seek)
        drawn = wait_for(driver, "window.reviewState.drawn.length && window.reviewState.drawn", 10, "boxes drawn")
        assert any(d["layer"] == "tracks" and d["id"] == 99 for d in drawn)
        assert any(d["layer"] == "errors" and d["kind"] == "idsw" and d["pred_id"] == 99 for d in drawn)
        assert driver.find_element("id", "frame-number").text == str(switch["frame"])
        driver.find_element("tag name", "body").send_keys("\ue014")  # → : one frame on
        wait_for(driver, f"document.getElementById('review').dataset.frame === '{switch['frame'] + 1}'", 10, "→")
        driver.find_element("id", "prev-idsw").click()  # nothing before it but itself: back to the switch
        wait_for(driver, f"document.getElementById('review').dataset.frame === '{switch['frame']}'", 10, "◀ switch")
        driver.find_element("css selector", "[data-layer=tracks]").click()  # the tracks layer off
        wait_for(driver, "!window.reviewState.drawn.some(d => d.layer === 'tracks')", 10, "tracks hidden")
        assert no_page_overflow(driver) and console_errors(driver) == []
    finally:
        driver.quit()


def test_two_runs_of_one_video_are_reviewed_side_by_side_in_step(stack, tmp_path):
    """`?with=CHILD`: both runs' videos move together, each pane draws its own tracks and errors, the jumps
    visit the events of both (A's switch at 20, B's at 30), the family is offered; a run of another video is
    refused with the reason, and the page still shows the first run."""
    import dataclasses

    from shared.formats.mot_txt import read_mot
    from shared.run_store import RunStore
    from shared.video import probe_video

    scene = render_scene(tmp_path / "clip", frames=40, seed=7, size=(480, 270))
    gt = read_mot(scene.gt_txt)
    store = RunStore(stack.root)
    info = probe_video(scene.video)
    switched = {
        20: np.where((gt.id == 2) & (gt.frame >= 20), 99, gt.id),
        30: np.where((gt.id == 3) & (gt.frame >= 30), 77, gt.id),
    }
    first = _tracked_run(store, scene, dataclasses.replace(gt, id=switched[20]), "switch at 20")
    second = _tracked_run(store, scene, dataclasses.replace(gt, id=switched[30]), "switch at 30", parent=first)
    other = store.create({"upload": "other.mp4", "video": {**dataclasses.asdict(info), "frames": 99}}, name="other")
    stack.start_gateway()
    driver = _driver()
    try:
        driver.get(f"{stack.url}/ui/runs/{first}/review?with={second}")
        for counts in ("event-counts", "event-counts-b"):
            wait_for(driver, f"document.getElementById('{counts}').textContent.includes('1 ID switches')", 30, counts)
        assert second in driver.find_element("id", "family").get_attribute("innerHTML")
        for frame, pane, track in ((20, 0, 99), (30, 1, 77)):
            driver.find_element("id", "next-idsw").click()
            wait_for(driver, f"document.getElementById('review').dataset.frame === '{frame}'", 20, f"frame {frame}")
            for video in ("review-video", "review-video-b"):  # both videos show the frame
                shown = driver.execute_script(f"return document.getElementById('{video}').currentTime") * info.fps
                assert abs(shown - (frame - 0.5)) < 0.5, (video, shown)
            drawn = wait_for(driver, f"window.reviewState.panes.every(p => p.shows === {frame}) && "
                                     "window.reviewState.panes.map(p => p.drawn)", 10, "both panes drawn")  # fmt: skip
            switches = [[d["pred_id"] for d in pane_drawn if d["layer"] == "errors" and d["kind"] == "idsw"]
                        for pane_drawn in drawn]  # fmt: skip
            assert switches[pane] == [track] and switches[1 - pane] == [], switches
            assert any(d["layer"] == "tracks" and d["id"] == track for d in drawn[pane])
        driver.save_screenshot(str(tmp_path / "side_by_side.png"))  # for a person to look at
        rects = driver.execute_script(
            "const r = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };"
            "return { stages: [...document.querySelectorAll('.stage')].map(r),"
            " videos: [...document.querySelectorAll('.pane video')].map(r),"
            " canvases: [...document.querySelectorAll('.pane canvas')].map(r),"
            " timeline: r(document.getElementById('timeline')) };"
        )
        assert rects["videos"] == rects["canvases"] == rects["stages"], rects  # boxes lie on the picture
        assert max(stage[3] for stage in rects["stages"]) <= rects["timeline"][1], rects  # nothing overlaps
        assert no_page_overflow(driver) and console_errors(driver) == []
        driver.get(f"{stack.url}/ui/runs/{first}/review?with={other.run}")
        problem = driver.find_element("id", "review-problem").text
        assert "not of the same video (99 frames" in problem and "side by side needs the same video" in problem
        assert len(driver.find_elements("css selector", ".pane")) == 1
    finally:
        driver.quit()
