"""Wheels that let `scripts/gpu_check.py` run on the lent GPU machine: Python 3.12 with PyTorch but no PyAV,
pydantic or PyNvVideoCodec, no network, and at most 64 MiB carried per call, the working tree included.

    .venv/bin/python scripts/device_wheels.py .whl          # here (`echo /.whl/ >> .git/info/exclude` first)

then one `run` with carry [".whl"]:

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
    PYTHONPATH=.:/tmp/site python3 scripts/gpu_check.py --device cuda

(`.` first: PyNvVideoCodec's wheel also installs top-level `benchmarks` and `samples` folders.)

As downloaded the wheels are 65.6 MB, over the limit with the tree (2.2 MB). PyNvVideoCodec's wheel carries
FFmpeg's source (12 MB), notebooks, samples and a second build for CUDA 12 drivers; only what decoding with a
CUDA 13 driver imports is kept (its `__init__` picks `_130` for a driver of NVENC 13 or later, as the
H200's 580 driver is), and its RECORD is rewritten to match. Versions are this checkout's (`.venv`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

# what gpu_check imports that the device's image lacks (docs of the device: KINDS.md's package list)
MISSING = ["av", "pydantic", "pydantic-core", "pydantic-settings", "python-dotenv", "typing-inspection",
           "annotated-types", "defusedxml"]  # fmt: skip
NVDEC = "PyNvVideoCodec==2.2.4"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
LIMIT = 64 * 2**20


def download(spec: str, folder: Path) -> Path:
    before = set(folder.glob("*.whl"))
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(folder), spec],
                   check=True)  # fmt: skip
    new = set(folder.glob("*.whl")) - before
    name = spec.split("=")[0].lower().replace("-", "_")
    return new.pop() if new else next(p for p in folder.glob("*.whl") if p.name.lower().startswith(name))


def needed_for_decoding(name: str) -> bool:
    top = name.split("/")[0]
    return (top.startswith("PyNvVideoCodec") and "_121." not in name) or top.startswith("pynvvideocodec")


def trim(wheel: Path) -> None:
    """Rewrite `wheel` in place with only the package, its vendored CUDA runtime and its metadata."""
    trimmed = wheel.with_suffix(".trimmed")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(trimmed, "w", zipfile.ZIP_DEFLATED) as target:
        kept = {info.filename for info in source.infolist() if needed_for_decoding(info.filename)}
        kept = {n for n in kept if ".data/" not in n}
        for name in sorted(kept):
            data = source.read(name)
            if name.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = ("\n".join(line for line in lines if line.split(",")[0] in kept) + "\n").encode()
            target.writestr(name, data)
    trimmed.replace(wheel)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    for old in args.folder.glob("*.whl"):  # one version of each: two stop the whole install there
        old.unlink()
    for name in MISSING:
        download(f"{name}=={version(name)}", args.folder)
    trim(download(NVDEC, args.folder))
    tree = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    tree_bytes = sum(Path(p.decode()).stat().st_size for p in tree if p and Path(p.decode()).is_file())
    wheels = sorted(args.folder.glob("*.whl"))
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:8.1f} MiB  {wheel.name}")
    total = tree_bytes + sum(w.stat().st_size for w in wheels)
    print(f"{total / 2**20:8.1f} MiB  with the working tree ({tree_bytes / 2**20:.1f} MiB); the limit is 64 MiB")
    return 0 if total < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
