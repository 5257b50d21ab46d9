"""Small input builders shared by the pipeline tests."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from PIL import Image

from tagmill.engine.synth.world import SynthConfig, synthesize

CLEAN = dict(hallucination=0.0, omission=0.0, wrong_attribute=0.0)


def make_world(folder: Path, n: int, shard_size: int = 50, seed: int = 0, **noise) -> Path:
    synthesize(folder, SynthConfig(n=n, seed=seed, shard_size=shard_size, **(noise or CLEAN)))
    return folder


def jpeg_bytes(size=(16, 12), color=(200, 30, 30), mode="RGB", **save) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def png_bytes(size=(16, 12), mode="RGBA", color=(0, 0, 255, 128)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_manifest(path: Path, lines: list) -> Path:
    """Lines are dicts (written as JSON) or raw bytes (written as they are)."""
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else json.dumps(line).encode())
            f.write(b"\n")
    return path


def add_member(tar: tarfile.TarFile, name: str, data: bytes, kind: bytes = tarfile.REGTYPE, link: str = ""):
    info = tarfile.TarInfo(name)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.type = kind
    info.linkname = link
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def shard_digests(out: Path) -> dict[str, str]:
    """sha256 of every shard file, to compare runs byte for byte."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "shards").iterdir())}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# CI installs Chromium (.ci/run), so there a missing one fails the browser tests instead of skipping them.
needs_chromium = pytest.mark.skipif(not shutil.which("chromium") and not os.environ.get("CI"),
                                    reason="Debian's chromium is not installed")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LOCAL_URLS = ("http://127.0.0.1:", "file://", "data:", "about:")


@contextlib.contextmanager
def chromium_page(errors: list[str]):
    """A Playwright page in Debian's Chromium. Console errors, uncaught exceptions and any request that would
    leave the machine (refused) are appended to `errors`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
            page.route("**/*", lambda route: _local_only(route, errors))
            yield page
        finally:
            browser.close()


def _local_only(route, errors: list[str]) -> None:
    url = route.request.url
    if url.startswith(LOCAL_URLS):
        route.continue_()
    else:
        errors.append(f"external request: {url}")
        route.abort()


def render_in_chromium(page: Path, shot: Path) -> list[str]:
    """Open a page in headless Chromium, screenshot it, and return its console messages."""
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained: opens offline
    result = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                             "--v=0", "--window-size=1100,2000", f"--screenshot={shot}", page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    return [line for line in result.stderr.splitlines() if "CONSOLE" in line]
