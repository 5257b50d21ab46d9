"""The audit without a truth, checked against one: a scripted reviewer answers a run's sample from truth.jsonl,
and the human estimates must find the precision the truth gives. Also the `audit` command, the review server's
API and the notebook's estimates (the page itself is driven in a browser in test_review_browser.py)."""

import http.client
import json
import statistics
import threading
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import make_world, read_jsonl
from tagmill.engine.report.audit import read_truth
from tagmill.engine.report.build import read_samples
from tagmill.engine.report.estimates import human_estimates
from tagmill.engine.report.judgments import JUDGMENTS_JSONL, JudgmentLog, judgment
from tagmill.engine.report.review import audit_dir, draw_sample, is_final, read_items, read_strata
from tagmill.pipeline.cli import main
from tagmill.pipeline.job import run
from tagmill.pipeline.review_server import ReviewServer, ReviewSession
from test_clean_stage import clip  # noqa: F401 (fixture)
from test_generate import save_random_tagger

SEEDS = 50
NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "audit.ipynb"


@pytest.fixture(scope="module")
def noisy(clip, tmp_path_factory):  # noqa: F811
    """A noisy world through the whole engine: captions that invent and miss tags, a random tagger adding a few
    tags (mostly wrong ones), and all three cleaning rules dropping some: every kind of stratum, of very
    different precision and size."""
    folder = tmp_path_factory.mktemp("noisy")
    world = make_world(folder / "world", 600, shard_size=200, seed=3, hallucination=0.2, omission=0.3,
                       wrong_attribute=0.1)
    model = save_random_tagger(folder / "model", (world / "tags.txt").read_text().split())
    out = folder / "out"
    run(["--input", str(world), "--output", str(out), "--set", "stages=[parse,generate,clean]",
         "--set", f"generate.model={model}", "--set", "generate.device=cpu", "--set", "generate.margin=0.08",
         "--set", f"clean.clip={clip}", "--set", "clean.device=cpu", "--set", "clean.rules.support.margin=0.05",
         "--set", "clean.rules.outliers.min_samples=10"])
    return out, read_truth(world / "truth.jsonl")


def view(out: Path, folder: Path) -> Path:
    """A folder that reads the run's shards but has an audit/ of its own."""
    folder.mkdir(parents=True)
    (folder / "shards").symlink_to(out / "shards")
    return folder


def scripted_review(folder: Path, truth: dict[str, set[str]], unsure_every: int = 0) -> None:
    """Answer every sampled item from the truth, as a careful reviewer would (and `unsure` every so often)."""
    lines = []
    for number, item in enumerate(read_items(folder), 1):
        verdict = "right" if item["tag"] in truth[item["sample"]] else "wrong"
        lines.append(judgment(item["sample"], item["tag"], "unsure" if unsure_every and number % unsure_every == 0
                              else verdict, "script"))
    JudgmentLog(Path(audit_dir(folder)) / JUDGMENTS_JSONL).extend(lines)


def true_precision(out: Path, truth: dict[str, set[str]]) -> dict[str, float]:
    """The precision the truth gives: of the final tags, and of the tags the captions and the tagger gave."""
    right, total = Counter(), Counter()
    for sample in read_samples(out / "shards"):
        expected = truth[sample["id"]]
        for tag, entries in sample["tag_sources"].items():
            kinds = {entry["source"] for entry in entries} | ({"final"} if tag in sample["tags"] else set())
            for kind in kinds:
                total[kind] += 1
                right[kind] += tag in expected
    return {kind: right[kind] / total[kind] for kind in ("final", "parsed", "generated")}


def seeded_estimates(out: Path, truth: dict, folder: Path, per_stratum: int) -> list[dict]:
    found = []
    for seed in range(SEEDS):
        audited = view(out, folder / f"seed-{seed}")
        draw_sample(audited, per_stratum, seed)
        scripted_review(audited, truth)
        found.append(human_estimates(audited))
    return found


def test_the_final_precision_interval_covers_the_truth_in_nine_of_ten_samples(noisy, tmp_path):
    out, truth = noisy
    target = true_precision(out, truth)
    estimates = seeded_estimates(out, truth, tmp_path, per_stratum=50)
    covered = {kind: sum(e[kind]["low"] <= target[kind] <= e[kind]["high"] for e in estimates) for kind in target}
    assert covered["final"] >= 0.9 * SEEDS, (covered, target)
    assert covered["parsed"] >= 0.9 * SEEDS and covered["generated"] >= 0.9 * SEEDS, covered
    strata = read_strata(tmp_path / "seed-0")["strata"]
    assert len([name for name in strata if is_final(name)]) == 3 and len(strata) == 6  # three rules dropped tags


def test_at_400_judgments_the_final_precision_is_within_three_points(noisy, tmp_path):
    out, truth = noisy
    target = true_precision(out, truth)["final"]
    draw_sample(view(out, tmp_path / "sizes"), per_stratum=1)
    sizes = [s["size"] for name, s in read_strata(tmp_path / "sizes")["strata"].items() if is_final(name)]
    per_stratum = next(k for k in range(1, max(sizes) + 1) if sum(min(k, size) for size in sizes) >= 400)
    estimates = seeded_estimates(out, truth, tmp_path, per_stratum)
    assert all(e["final"]["judgments"] == 400 for e in estimates)
    errors = [e["final"]["estimate"] - target for e in estimates]
    assert abs(statistics.mean(errors)) <= 0.01  # no bias
    # 400 judgments leave a standard error of about 0.02 here: most samples, not all, are within 0.03
    assert statistics.median(map(abs, errors)) <= 0.02, errors
    assert sum(abs(error) <= 0.03 for error in errors) >= 0.75 * SEEDS, errors


def test_audit_commands_and_the_rebuilt_report(noisy, tmp_path, capsys):
    out, truth = noisy
    audited = view(out, tmp_path / "run")
    assert main(["audit", "sample", str(audited), "--per-stratum", "12", "--seed", "4"]) == 0
    assert "added 72 items" in capsys.readouterr().out
    assert main(["audit", "sample", str(audited), "--per-stratum", "15", "--seed", "4"]) == 0
    assert "added 18 items; 90 in" in capsys.readouterr().out
    assert main(["audit", "sample", str(audited), "--seed", "5"]) == 2
    assert "drawn with seed 4, not 5" in capsys.readouterr().err
    scripted_review(audited, truth, unsure_every=9)
    assert main(["report", str(audited)]) == 0
    printed = capsys.readouterr().out
    assert "precision, final tags" in printed and "right among no_model_support drops" in printed
    human = json.loads((audited / "report.json").read_text())["human_estimates"]
    assert human["judgments"]["unsure"] == 10 and human["judgments"]["items"] == 90
    assert human["final"]["judgments"] + human["final"]["unsure"] == sum(i["kept"] for i in read_items(audited))
    page = (audited / "report.html").read_text()
    assert "Human-verified estimates" in page and f"{human['final']['estimate']:.3f}" in page


def test_reviewing_with_no_sample_is_a_clear_error(noisy, tmp_path, capsys):
    out, _ = noisy
    assert main(["audit", "serve", str(view(out, tmp_path / "run")), "--port", "0"]) == 2
    assert "holds no sample: draw one with `tagmill audit sample" in capsys.readouterr().err


@pytest.fixture
def server(noisy, tmp_path):
    out, _ = noisy
    audited = view(out, tmp_path / "run")
    draw_sample(audited, per_stratum=3)
    with ReviewServer(ReviewSession(audited, "ann"), "127.0.0.1", 0) as running:
        thread = threading.Thread(target=running.serve_forever, daemon=True)
        thread.start()
        yield running, audited
        running.shutdown()


def request(server, method: str, path: str, body: object = None, **headers) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **headers} if body is not None else headers
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def test_the_review_api_serves_blind_items_and_their_images(server):
    running, audited = server
    status, page = request(running, "GET", "/")
    assert status == 200 and b"http://" not in page and b"https://" not in page
    state = json.loads(request(running, "GET", "/api/state")[1])
    assert state["reviewer"] == "ann" and len(state["items"]) == 18 and state["answers"] == {}
    assert set(state["items"][0]) == {"index", "sample", "tag", "captions"}  # not the decision, not the stratum
    status, jpeg = request(running, "GET", "/image/0")
    assert status == 200 and jpeg[:2] == b"\xff\xd8"
    for path in ("/image/18", "/image/../../etc/passwd", "/image/-1", "/shards/00000.tar", "/audit/sample.jsonl"):
        assert request(running, "GET", path)[0] == 404, path


def test_the_review_api_validates_every_answer_and_saves_each(server):
    running, audited = server
    item = read_items(audited)[0]
    answer = {"index": 0, "sample": item["sample"], "tag": item["tag"], "verdict": "wrong"}
    status, body = request(running, "POST", "/api/judgments", answer)
    assert status == 200 and json.loads(body)["answered"] == 1
    refused = [{**answer, "verdict": "maybe"}, {**answer, "index": 99}, {**answer, "index": True},
               {**answer, "tag": "not the item's"}, {**answer, "reviewer": "mallory"}, [answer]]
    for bad in refused:
        assert request(running, "POST", "/api/judgments", bad)[0] == 400, bad
    assert request(running, "POST", "/api/judgments", answer, Origin="http://elsewhere.example")[0] == 400
    assert request(running, "POST", "/api/judgments", answer, Host="elsewhere.example")[0] == 421
    assert request(running, "GET", "/api/state", Host="rebound.example:80")[0] == 421
    lines = read_jsonl(Path(audit_dir(audited)) / JUDGMENTS_JSONL)
    assert [(line["sample"], line["tag"], line["verdict"], line["reviewer"]) for line in lines] == \
        [(item["sample"], item["tag"], "wrong", "ann")]
    assert json.loads(request(running, "GET", "/api/state")[1])["answers"] == {"0": "wrong"}


def test_a_server_on_another_loopback_address_answers_to_that_address(noisy, tmp_path):
    audited = view(noisy[0], tmp_path / "run")
    draw_sample(audited, per_stratum=1)
    with ReviewServer(ReviewSession(audited, "ann"), "127.0.0.2", 0) as running:
        thread = threading.Thread(target=running.serve_forever, daemon=True)
        thread.start()
        port = running.server_address[1]
        assert running.url == f"http://127.0.0.2:{port}/"
        assert request(running, "GET", "/api/state")[0] == 200
        assert request(running, "GET", "/api/state", Host=f"localhost:{port}")[0] == 200
        assert request(running, "GET", "/api/state", Host=f"127.0.0.1:{port}")[0] == 421
        assert request(running, "POST", "/api/judgments", {"index": 0}, **{"Content-Length": "²"})[0] == 400
        running.shutdown()


@pytest.mark.slow
def test_the_audit_notebook_shows_the_human_estimates(noisy, tmp_path, monkeypatch):
    out, truth = noisy
    audited = view(out, tmp_path / "run")
    draw_sample(audited, per_stratum=10)
    scripted_review(audited, truth)
    assert main(["report", str(audited)]) == 0
    entry = {"round": 0, "folder": str(audited), "stages": ["parse", "generate", "clean"], "samples": 600,
             "tags_per_sample": {"cleaned": 2.0}, "drops_by_rule": {}, "model_map": 0.5}
    (tmp_path / "rounds.json").write_text(json.dumps([entry]))
    monkeypatch.setenv("TAGMILL_WORK", str(tmp_path))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    last = notebook.cells[-1].outputs
    tables = [output["data"]["text/plain"] for output in last if "text/plain" in output.get("data", {})]
    assert tables and "precision: final tags" in tables[0] and "right among drops: clip_similarity" in tables[0]
