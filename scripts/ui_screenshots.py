"""Screenshots of the dashboard's main pages, to look at them: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium against a running server.

    .venv/bin/motpipe serve --port 8000 &          # with some runs in its data root
    .venv/bin/python scripts/ui_screenshots.py --url http://127.0.0.1:8000 --out /tmp/ui-shots [--token T]

Writes `<page>-wide.png` (1280x800) and `<page>-narrow.png` (390x844) for the runs list, the newest run,
its review page, upload, compare, training and the newest sweep and job when there are; prints browser
console errors. `--populate DATA_ROOT` first fills an empty server (whose data root that is) through its API:
a synthetic clip detected, tracked twice (a parent and a child), scored against its ground truth, a 3×3
bytetrack sweep and a two-epoch MOTRv2 job with validation from a small filled checkpoint. `--viewport` keeps
each screenshot at the window's size (the README's 1280×800 pictures) instead of the whole page.

    MOTPIPE_DATA_ROOT=/tmp/shots-data .venv/bin/motpipe serve --port 8000 &
    .venv/bin/python scripts/ui_screenshots.py --populate /tmp/shots-data --viewport --out docs/img
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def chromium_driver(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(driver_path), options=options)


def pages(base: str, token: str | None) -> list[tuple[str, str]]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    runs = httpx.get(f"{base}/runs", params={"limit": 500}, headers=headers, timeout=10).json()["runs"]
    out = [("runs", "/ui"), ("upload", "/ui/upload"), ("training", "/ui/train"), ("sweeps", "/ui/sweeps")]
    # a run of its own (not a sweep's combination) first: the one a reader would open
    evaluated = [r["run"] for r in sorted(runs, key=lambda r: r["sweep"] is not None) if r["HOTA"] is not None]
    if runs:
        out.append(("run", f"/ui/runs/{(evaluated or [runs[0]['run']])[0]}"))
    if evaluated:
        parent = next(r["parent"] for r in runs if r["run"] == evaluated[0])
        beside = f"?with={parent}" if parent else ""  # a child beside the run it was made from
        out.append(("review", f"/ui/runs/{evaluated[0]}/review{beside}"))
    if len(evaluated) >= 2:
        out.append(("compare", f"/ui/compare?runs={','.join(evaluated[:3])}"))
    sweeps = sorted({r["sweep"] for r in runs if r["sweep"]})
    if sweeps:
        out.append(("sweep", f"/ui/sweeps/{sweeps[0]}"))
    jobs = httpx.get(f"{base}/train", params={"limit": 1}, headers=headers, timeout=10).json()["jobs"]
    if jobs:
        out.append(("job", f"/ui/train/{jobs[0]['job']}"))
    return out


def populate(base: str, root: Path) -> None:
    """A run, its child, a sweep and a training job on an empty server, through its API (see the docstring)."""
    import tempfile
    import time

    import httpx
    import torch

    from services.tracker.motrv2.config import MOTRv2Config
    from services.tracker.motrv2.training.weights import fresh_model
    from shared.synth import render_scene

    def wait(path: str, done) -> dict:
        for _ in range(1200):
            body = httpx.get(base + path, timeout=10).json()
            if done(body):
                return body
            time.sleep(0.5)
        raise SystemExit(f"{path} did not finish: {body}")

    def stage_done(stage):
        return lambda r: r["stages"].get(stage, {}).get("state") in ("succeeded", "failed")

    clip = render_scene(Path(tempfile.mkdtemp()) / "clip", frames=120, seed=4, size=(640, 360), name="match3")
    with open(clip.video, "rb") as handle:
        answer = httpx.post(f"{base}/detect", files={"file": ("match3.mp4", handle, "video/mp4")},
                            data={"detector": "motion", "sequence": "match3"}, timeout=60)  # fmt: skip
    run = answer.raise_for_status().json()["run"]
    wait(f"/runs/{run}", stage_done("detect"))
    with open(clip.gt_txt, "rb") as handle:
        httpx.post(f"{base}/runs/{run}/gt", files={"file": ("gt.txt", handle)}, timeout=30).raise_for_status()
    for threshold in (None, 0.4):  # the run itself, then a child tracked again with another threshold
        body = {"run": run, "tracker": "bytetrack"} | ({"score_threshold": threshold} if threshold else {})
        tracked = httpx.post(f"{base}/track", json=body, timeout=30).raise_for_status().json()["run"]
        wait(f"/runs/{tracked}", stage_done("track"))
        httpx.get(f"{base}/eval/{tracked}", timeout=120).raise_for_status()
    grid = {"score_threshold": [0.2, 0.5, 0.8], "minimum_consecutive_frames": [1, 5, 20]}
    sweep = httpx.post(f"{base}/sweeps", json={"run": run, "tracker": "bytetrack", "grid": grid}, timeout=30)
    wait(f"/sweeps/{sweep.raise_for_status().json()['sweep']}", lambda b: b["state"] in ("succeeded", "failed"))
    small = MOTRv2Config(num_classes=1, enc_layers=1, dec_layers=2, dim_feedforward=256)
    torch.manual_seed(0)
    torch.save({"model": fresh_model(small).state_dict()}, root / "init.pth")
    body = {"runs": [run], "val": [run], "weights": "init.pth", "epochs": 2, "lr_backbone": 0, "augment": False,
            "sampler_length": 2, "sample_interval": 1, "val_short_side": 256, "max_steps": 60}  # fmt: skip
    job = httpx.post(f"{base}/train", json=body, timeout=30).raise_for_status().json()["job"]
    wait(f"/train/{job}", lambda b: b["state"] in ("succeeded", "failed"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default="/tmp/ui-shots")
    parser.add_argument("--token")
    parser.add_argument("--populate", metavar="DATA_ROOT", type=Path, help="fill the server first (see above)")
    parser.add_argument("--viewport", action="store_true", help="the window only, 1280x800, no narrow ones")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.populate:
        populate(args.url, args.populate)
    errors = 0
    sizes = (("wide", (1280, 800)),) if args.viewport else (("wide", (1280, 800)), ("narrow", (390, 844)))
    for label, (width, height) in sizes:
        driver = chromium_driver(width, height)
        try:
            if args.token:
                driver.get(f"{args.url}/ui/login")
                driver.find_element("name", "token").send_keys(args.token + "\n")
            for name, path in pages(args.url, args.token):
                driver.get(args.url + path)
                driver.implicitly_wait(2)
                import time

                time.sleep(2.5)  # let the page's polling fill tables and plots
                if name == "review":  # at the first ID switch, with its markers drawn
                    driver.execute_script("document.getElementById('next-idsw').click()")
                    time.sleep(1.5)
                if args.viewport:
                    driver.save_screenshot(str(out / f"{name}.png"))
                else:
                    height_px = driver.execute_script("return document.body.scrollHeight")
                    driver.set_window_size(width, min(max(height, height_px + 100), 6000))
                    for _ in range(40):  # lazy plots start loading once the taller window shows them
                        if driver.execute_script("return [...document.images].every(i => i.complete)"):
                            break
                        time.sleep(0.25)
                    driver.save_screenshot(str(out / f"{name}-{label}.png"))
                    driver.set_window_size(width, height)
                for entry in driver.get_log("browser"):
                    if entry["level"] == "SEVERE":
                        errors += 1
                        print(f"{name} ({label}): {entry['message']}", file=sys.stderr)
        finally:
            driver.quit()
    print(f"screenshots in {out}; {errors} console error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
