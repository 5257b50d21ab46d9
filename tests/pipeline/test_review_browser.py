"""The review page and the browsable report in Debian's Chromium, driven by Playwright: a reviewer answers 20
items with the keyboard while the server is killed and restarted half-way, then sorts, filters and pages the
rebuilt report. No console error, no request leaving the machine."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import chromium_page, make_world, needs_chromium, read_jsonl
from tagmill.engine.report.audit import read_truth
from tagmill.engine.report.judgments import JUDGMENTS_JSONL
from tagmill.engine.report.review import audit_dir, read_items
from tagmill.pipeline.cli import main
from tagmill.pipeline.job import run
from test_clean_stage import clean_args, clip  # noqa: F401 (fixture)

pytestmark = [needs_chromium, pytest.mark.slow]
KEYS = {"right": "r", "wrong": "w", "unsure": "u"}


@pytest.fixture(scope="module")
def sampled(clip, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("browser")
    world = make_world(folder / "world", 80, shard_size=40, seed=2, hallucination=0.2, omission=0.3,
                       wrong_attribute=0.1)
    out = folder / "out"
    run(clean_args(world, out, clip))
    assert main(["audit", "sample", str(out), "--per-stratum", "8"]) == 0
    assert len(read_items(out)) >= 20
    return out, read_truth(world / "truth.jsonl")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(out: Path, port: int) -> subprocess.Popen:
    """`tagmill audit serve` in its own process, once it answers."""
    server = subprocess.Popen([sys.executable, "-m", "tagmill.pipeline.cli", "audit", "serve", str(out),
                               "--port", str(port), "--reviewer", "tester"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=2):
                return server
        except OSError:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            time.sleep(0.3)
    server.kill()
    raise AssertionError("the review server did not start")


def current_index(page) -> int:
    return int(page.get_attribute("body", "data-index"))


def answer(page, verdict: str) -> int:
    """Press the verdict's key on the item shown and wait for the next one; the answered item's index."""
    index = current_index(page)
    page.wait_for_function("() => { const image = document.getElementById('image');"
                           " return image.complete && image.naturalWidth > 0; }")
    page.keyboard.press(KEYS[verdict])
    page.wait_for_function(f"() => document.body.dataset.index !== '{index}'")
    return index


def verdict_for(item: dict, truth: dict, step: int) -> str:
    if step % 7 == 3:
        return "unsure"
    return "right" if item["tag"] in truth[item["sample"]] else "wrong"


def review(page, items: list[dict], truth: dict, steps: range, expected: dict[int, str]) -> None:
    for step in steps:
        item = items[current_index(page)]
        assert page.inner_text("#tag") == item["tag"]
        assert item["captions"][0] in page.inner_text("#captions")
        verdict = verdict_for(item, truth, step)
        expected[answer(page, verdict)] = verdict


def test_reviewing_20_items_with_the_keyboard_across_a_killed_server(sampled):
    out, truth = sampled
    items, port, errors, expected = read_items(out), free_port(), [], {}
    url = f"http://127.0.0.1:{port}/"
    server = start_server(out, port)
    try:
        with chromium_page(errors) as page:
            page.goto(url)
            page.wait_for_function("() => document.body.dataset.index === '0'")
            assert page.inner_text("#progress-text") == f"0 of {len(items)} judged"
            review(page, items, truth, range(6), expected)
            page.keyboard.press("z")  # undo: back to the item just answered, which a new answer replaces
            page.wait_for_function("() => document.body.dataset.index === '5'")
            assert f"your answer so far: {expected[5]}" in page.inner_text("#previous")
            expected[5] = "wrong" if expected[5] == "right" else "right"
            answer(page, expected[5])
            review(page, items, truth, range(6, 10), expected)
            assert len(read_jsonl(Path(audit_dir(out)) / JUDGMENTS_JSONL)) == 11
            before_the_kill = len(errors)
            server.kill()  # SIGKILL: no shutdown, no flush but the ones already done
            server.wait()
            page.keyboard.press("r")
            page.wait_for_selector("#status.error")
            assert current_index(page) == 10 and "not saved" in page.inner_text("#status")
            server = start_server(out, port)
            page.reload()
            page.wait_for_function("() => document.body.dataset.index === '10'")  # where the reviewer stopped
            outage = errors[before_the_kill:]  # requests cut off or refused while the server was down
            assert all("net::ERR_" in error or "Failed to fetch" in error for error in outage), outage
            del errors[before_the_kill:]
            assert page.inner_text("#progress-text") == f"10 of {len(items)} judged"
            review(page, items, truth, range(10, 20), expected)
            assert page.inner_text("#progress-text") == f"20 of {len(items)} judged"
    finally:
        server.kill()
        server.wait()
    assert errors == []
    lines = read_jsonl(Path(audit_dir(out)) / JUDGMENTS_JSONL)
    assert len(lines) == 21 and {line["reviewer"] for line in lines} == {"tester"}
    latest = {(line["sample"], line["tag"]): line["verdict"] for line in lines}
    assert latest == {(items[i]["sample"], items[i]["tag"]): verdict for i, verdict in expected.items()}
    assert main(["report", str(out)]) == 0
    human = json.loads((out / "report.json").read_text())["human_estimates"]
    assert human["judgments"]["items"] == 20
    assert human["judgments"]["unsure"] == sum(v == "unsure" for v in expected.values())
    kept = [i for i, verdict in expected.items() if items[i]["kept"] and verdict != "unsure"]
    assert human["final"]["judgments"] == len(kept)
    assert human["final"]["estimate"] == round(sum(expected[i] == "right" for i in kept) / len(kept), 4)


def column(page, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "#tag-table tbody tr:not([hidden])", f"rows => rows.map(row => row.cells[{index}].textContent.trim())")


def test_the_report_page_sorts_filters_and_pages_examples(sampled, tmp_path):
    out, _ = sampled
    assert main(["report", str(out)]) == 0
    errors = []
    with chromium_page(errors) as page:
        page.goto((out / "report.html").as_uri())
        headers = page.eval_on_selector_all("#tag-table thead th", "cells => cells.map(c => c.textContent)")
        kept = headers.index("kept")
        page.click(f"#tag-table thead th:nth-child({kept + 1})")
        values = [int(v) for v in column(page, kept)]
        assert values == sorted(values, reverse=True) and len(set(values)) > 1
        page.click(f"#tag-table thead th:nth-child({kept + 1})")
        assert [int(v) for v in column(page, kept)] == sorted(values)
        page.click("#tag-table thead th:nth-child(1)")
        tags = column(page, 0)
        assert tags == sorted(tags, key=str.lower)
        page.fill("#tag-filter", "re")
        shown = column(page, 0)
        assert shown and all("re" in tag for tag in shown) and len(shown) < len(tags)
        assert page.inner_text("#tag-count") == f"{len(shown)} of {len(tags)} tags"
        page.fill("#tag-filter", "")
        page.click(f"#tag-table thead th:nth-child({kept + 1})")  # the most kept tag has pages of examples
        page.click("#tag-table tbody tr:first-child button.tag-link")
        panel = page.locator("#tag-examples .examples-kept")
        assert panel.locator(".sample").count() == 6 and "page 1 of" in panel.inner_text()
        panel.get_by_role("button", name="next ›").click()
        assert "page 2 of" in panel.inner_text() and panel.locator(".sample img").count() > 0
        assert "Human-verified estimates" in page.inner_text("body")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert errors == []
