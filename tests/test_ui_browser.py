"""The /ui dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium)
against the real stack: upload through the form, watch progress, track, upload ground truth, read metrics
and plots, open the overlay, start a sweep and read its leaderboard; no console errors; usable at 1280x800
and on a narrow window; login with a token that never appears in a URL."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest

from shared.synth import render_scene

pytestmark = pytest.mark.service


def _driver(width: int = 1280, height: int = 800):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from scripts.ui_screenshots import chromium_driver

    return chromium_driver(width, height)


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
        rows = driver.find_elements("css selector", "#leaderboard tbody tr")
        assert len(rows) == 4
        hotas = [float(r.find_elements("css selector", "td")[4].text) for r in rows]
        balls = [r.find_elements("css selector", "td")[-1].text for r in rows]  # the motion det_db's classes
        assert all(balls) and float(balls[0]) > 0, balls
        assert hotas == sorted(hotas, reverse=True)
        assert "score_threshold=0.2, minimum_consecutive_frames=1" in rows[0].text
        wait_for(driver, "document.querySelectorAll('#sweep-plots img').length >= 1", 30, "sweep plots")
        assert console_errors(driver) == []

        pages = ["/ui", f"/ui/runs/{run}", "/ui/upload", f"/ui/compare?a={run}&b={run}", "/ui/train",
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
        listed = [r.get_attribute("data-run") for r in driver.find_elements("css selector", "#runs tbody tr")]
        created = [r["run"] for r in httpx.get(f"{stack.url}/runs").json()]
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
