"""The docs stay true: the README is short, every relative link (and its #anchor) resolves, every route of the
OpenAPI document is named in docs/api.md, and the command blocks marked `<!-- docs-test: runs -->` run as
written (in a temporary folder, on the synthetic clip they make); the `server` block starts and answers."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(m.group(2)) for m in re.finditer(r"^(#+) (.+)$", path.read_text(), flags=re.M)}


def blocks(path: Path, mark: str) -> list[str]:
    """The fenced blocks right after `<!-- docs-test: MARK -->`."""
    pattern = rf"<!-- docs-test: {mark} -->\s*```\w*\n(.*?)```"
    return re.findall(pattern, path.read_text(), flags=re.S)


def commands(block: str) -> list[list[str]]:
    out = []
    for line in block.splitlines():
        line = line.split("  #", 1)[0].strip()
        if line:
            words = shlex.split(line)
            if words[0] == ".venv/bin/motpipe":
                words[0] = str(REPO / ".venv" / "bin" / "motpipe")
            out.append(words)
    return out


MARKS = re.compile(r"<!-- docs-test: (runs|server) -->|<!-- docs: (set-up|output|benchmark|your files|gpu|cluster) -->")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_code_block_is_run_or_says_what_it_needs(doc):
    """A block runs in this module (`docs-test`), or says why it cannot here: it is the set-up itself, an
    output, a benchmark (minutes), or needs the group's own files, a GPU or a cluster."""
    lines, inside, unmarked = doc.read_text().splitlines(), False, []
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if not inside:
                before = next((x for x in reversed(lines[: number - 1]) if x.strip()), "")
                if not MARKS.fullmatch(before.strip()):
                    unmarked.append(number)
            inside = not inside
    assert not unmarked, f"{doc.name}: code blocks at lines {unmarked} carry no docs-test / docs marker"


def test_the_readme_is_a_front_page():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    assert "make demo" in text and "make test" in text  # the two set-up commands


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_resolves(doc):
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.is_file(), f"{doc.name}: link to {target} does not resolve"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{doc.name}: {target}: no heading with that anchor in {path.name}"


def test_every_route_is_in_the_api_doc():
    from services.gateway.app import create
    from shared.settings import Settings

    spec = create(Settings(data_root=Path(os.environ["MOTPIPE_DATA_ROOT"]))).openapi()
    text = re.sub(r"\{[^}]*\}", "{}", (REPO / "docs" / "api.md").read_text())
    missing = []
    for path, operations in spec["paths"].items():
        for method in operations:
            generic = re.sub(r"\{[^}]*\}", "{}", path)
            if not re.search(rf"`{method.upper()}[^`]*\s{re.escape(generic)}[`?\[ ]", text) and not (
                f"`{generic}`" in text and method.upper() in ("PATCH", "DELETE")
            ):
                missing.append(f"{method.upper()} {path}")
    assert not missing, f"routes not named in docs/api.md: {missing}"


def test_the_walk_through_runs_as_written(tmp_path):
    (block,) = blocks(REPO / "README.md", "runs")
    env = {**os.environ, "MOTPIPE_DATA_ROOT": str(tmp_path / "data")}
    for words in commands(block):
        done = subprocess.run(words, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{shlex.join(words)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    import json

    report = json.loads((tmp_path / "metrics.json").read_text())
    assert 0 < report["trackeval"]["HOTA"] <= 1 and any((tmp_path / "plots").glob("*.png"))
    assert not (REPO / "clips").exists()  # it ran where it was told to


def test_the_server_block_starts_and_serves_the_dashboard(tmp_path):
    (block,) = blocks(REPO / "README.md", "server")
    (words,) = commands(block)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    words[words.index("--port") + 1] = str(port)
    env = {**os.environ, "MOTPIPE_DATA_ROOT": str(tmp_path / "data")}
    env.pop("MOTPIPE_API_TOKEN", None)
    proc = subprocess.Popen(words, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ui", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        else:
            raise AssertionError("motpipe serve did not answer /ui")
        assert httpx.get(f"http://127.0.0.1:{port}/runs", timeout=5).json()["total"] == 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
