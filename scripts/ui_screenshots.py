"""Screenshots of the dashboard's main pages, to look at them: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by Selenium against a running server.

    .venv/bin/motpipe serve --port 8000 &          # with some runs in its data root
    .venv/bin/python scripts/ui_screenshots.py --url http://127.0.0.1:8000 --out /tmp/ui-shots [--token T]

Writes `<page>-wide.png` (1280x800) and `<page>-narrow.png` (390x844) for the runs list, the newest run,
upload, compare, training and the newest sweep or job when there is one; prints browser console errors.
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
    evaluated = [r["run"] for r in runs if r["HOTA"] is not None]
    if runs:
        out.append(("run", f"/ui/runs/{(evaluated or [runs[0]['run']])[0]}"))
    if evaluated:
        out.append(("review", f"/ui/runs/{evaluated[0]}/review"))
    if len(evaluated) >= 2:
        out.append(("compare", f"/ui/compare?runs={','.join(evaluated[:3])}"))
    sweeps = sorted({r["sweep"] for r in runs if r["sweep"]})
    if sweeps:
        out.append(("sweep", f"/ui/sweeps/{sweeps[0]}"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default="/tmp/ui-shots")
    parser.add_argument("--token")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    errors = 0
    for label, (width, height) in (("wide", (1280, 800)), ("narrow", (390, 844))):
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
                height_px = driver.execute_script("return document.body.scrollHeight")
                driver.set_window_size(width, min(max(height, height_px + 100), 6000))
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
