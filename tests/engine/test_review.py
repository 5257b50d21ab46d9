"""The audit sample, the judgment log and the estimates, on small shard tables written with the output schema."""

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tagmill.engine.records import Record, TagSource
from tagmill.engine.report.estimates import Cell, estimate, human_estimates, wilson
from tagmill.engine.report.judgments import (JUDGMENTS_JSONL, JudgmentError, JudgmentLog, consensus, judgment,
                                             latest_verdicts, read_judgments)
from tagmill.engine.report.review import (SAMPLE_JSONL, STRATA_JSON, SampleError, audit_dir, draw_sample,
                                          read_items, read_strata)
from tagmill.engine.schema import samples_table
from tagmill.engine.webdataset_tar import write_tar

TAGS = ["cat", "dog", "red", "sky", "tree"]


def record(number: int) -> Record:
    """A sample whose tags vary with its number: some parsed, some generated, some both, some dropped."""
    found = Record(id=f"s{number:04d}", source="test", shard=0, index=number, captions=[f"caption {number}"],
                   image_ext="jpg")
    for offset, tag in enumerate(TAGS):
        kind = (number + offset) % 5
        if kind in (0, 2):
            found.tags.append(TagSource(tag, "parsed", 0, tag))
        if kind in (1, 2):
            found.tags.append(TagSource(tag, "generated", score=0.9))
        if kind in (0, 1, 2) and (number * 7 + offset) % 6 == 0:
            rule = "no_model_support" if kind == 0 else "clip_similarity"
            found.dropped[tag] = {"rule": rule, "score": 0.1, "threshold": 0.5}
    return found


def write_run(out: Path, samples: int = 300, per_shard: int = 100) -> Path:
    shards = out / "shards"
    shards.mkdir(parents=True)
    for start in range(0, samples, per_shard):
        records = [record(n) for n in range(start, min(start + per_shard, samples))]
        name = f"{start // per_shard:05d}"
        with open(shards / f"{name}.tar", "wb") as stream:
            places = write_tar(stream, ((r.id, {"jpg": b""}) for r in records))
        pq.write_table(samples_table(records, [sample["jpg"] for sample in places]), shards / f"{name}.parquet")
    return out


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "out")


def test_every_decision_is_in_exactly_one_stratum(run):
    draw_sample(run, per_stratum=5)
    strata = read_strata(run)["strata"]
    records = [record(n) for n in range(300)]
    assert sum(s["size"] for s in strata.values()) == sum(len(r.candidate_tags()) for r in records)
    assert set(strata) == {"final:parsed", "final:generated", "final:both", "dropped:no_model_support",
                           "dropped:clip_similarity"}
    final = sum(s["size"] for name, s in strata.items() if name.startswith("final:"))
    assert final == sum(len(r.tag_names()) for r in records)
    parsed = sum(s["sources"].get("parsed", 0) for s in strata.values())
    assert parsed == sum(1 for r in records for t in r.tags if t.source == "parsed")


def test_items_carry_what_a_reviewer_and_the_estimates_need(run):
    draw_sample(run, per_stratum=4)
    items = read_items(run)
    assert len(items) == 20
    assert [item["position"] for item in items[:5]] == [0] * 5  # each stratum's first item, then the seconds
    by_key = {r.id: r for r in (record(n) for n in range(300))}
    for item in items:
        sample = by_key[item["sample"]]
        assert item["kept"] == (item["tag"] in sample.tag_names())
        assert item["captions"] == sample.captions and item["shard"] == f"{sample.index // 100:05d}"
        assert (item["drop"] is None) == item["kept"]


def test_the_same_seed_draws_the_same_sample_and_drawing_more_adds_to_it(tmp_path):
    first, second = write_run(tmp_path / "a"), write_run(tmp_path / "b")
    draw_sample(first, per_stratum=6, seed=3)
    draw_sample(second, per_stratum=6, seed=3)
    drawn = (Path(audit_dir(first)) / SAMPLE_JSONL).read_text()
    assert drawn == (Path(audit_dir(second)) / SAMPLE_JSONL).read_text()
    added = draw_sample(first, per_stratum=10, seed=3)
    assert added["added"] == 20 and added["total"] == 50
    grown = (Path(audit_dir(first)) / SAMPLE_JSONL).read_text()
    assert grown.startswith(drawn)
    fresh = write_run(tmp_path / "c")
    draw_sample(fresh, per_stratum=10, seed=3)
    keys = {(i["sample"], i["tag"]) for i in read_items(first)}
    assert keys == {(i["sample"], i["tag"]) for i in read_items(fresh)}
    assert draw_sample(first, per_stratum=4, seed=3)["added"] == 0
    assert json.loads((Path(audit_dir(first)) / STRATA_JSON).read_text())["per_stratum"] == 10


def test_another_seed_draws_another_sample(tmp_path):
    first, second = write_run(tmp_path / "a"), write_run(tmp_path / "b")
    draw_sample(first, per_stratum=6, seed=1)
    draw_sample(second, per_stratum=6, seed=2)
    assert read_items(first) != read_items(second)


def test_a_sample_grows_only_with_its_own_seed_and_run(run):
    draw_sample(run, per_stratum=5, seed=1)
    with pytest.raises(SampleError, match="drawn with seed 1, not 2"):
        draw_sample(run, per_stratum=5, seed=2)
    with pytest.raises(SampleError, match="top-tags 0, not 2"):
        draw_sample(run, per_stratum=5, seed=1, top_tags=2)
    (run / "shards" / "00002.parquet").unlink()
    with pytest.raises(SampleError, match="outputs changed"):
        draw_sample(run, per_stratum=5, seed=1)


def test_the_most_frequent_tags_get_strata_of_their_own(run):
    draw_sample(run, per_stratum=3, top_tags=2)
    strata = read_strata(run)["strata"]
    own = [name for name in strata if name.startswith("tag:")]
    assert len(own) == 2
    for name in own:
        assert set(strata[name]["tags"]) == {name[len("tag:"):]}
        assert all(name[len("tag:"):] not in strata[other]["tags"] for other in strata if other.startswith("final:"))


def test_a_folder_without_shards_is_a_clear_error(tmp_path):
    with pytest.raises(SampleError, match="no shards/ folder"):
        draw_sample(tmp_path)


@pytest.mark.parametrize("fields, message", [
    (("s1", "cat", "maybe", "ann"), "verdict must be one of"),
    (("s1", "cat", "right", "ann/../x"), "reviewer must be"),
    (("s1", "", "right", "ann"), "tag must be"),
    ((7, "cat", "right", "ann"), "sample must be"),
])
def test_invalid_judgments_are_refused(fields, message):
    with pytest.raises(JudgmentError, match=message):
        judgment(*fields)


def test_the_log_survives_a_torn_last_line_and_the_latest_verdict_counts(tmp_path):
    path = tmp_path / JUDGMENTS_JSONL
    JudgmentLog(path).append(judgment("s1", "cat", "wrong", "ann"))
    with open(path, "a", encoding="utf-8") as file:
        file.write('{"sample": "s2", "tag": "do')  # a process killed mid-write
    log = JudgmentLog(path)
    log.append(judgment("s1", "cat", "right", "ann"))
    log.append(judgment("s1", "cat", "wrong", "bob"))
    lines = read_judgments(path)
    assert [line["verdict"] for line in lines] == ["wrong", "right", "wrong"]
    assert latest_verdicts(lines) == {("s1", "cat"): {"ann": "right", "bob": "wrong"}}


@pytest.mark.parametrize("verdicts, expected", [
    ({"ann": "right"}, "right"), ({"ann": "unsure"}, "unsure"), ({"ann": "right", "bob": "wrong"}, "disputed"),
    ({"ann": "right", "bob": "wrong", "cy": "wrong"}, "wrong"), ({"ann": "unsure", "bob": "right"}, "right"),
])
def test_reviewers_verdicts_make_one(verdicts, expected):
    assert consensus(verdicts) == expected


def test_one_stratum_is_wilson():
    figure = estimate([Cell(population=500, right=45, wrong=5, unsure=3)])
    assert figure["estimate"] == 0.9 and figure["judgments"] == 50 and figure["unsure"] == 3
    assert (figure["low"], figure["high"]) == pytest.approx(wilson(45, 50), abs=1e-4)
    assert figure["low"] == pytest.approx(0.7864, abs=1e-4)


def test_strata_are_weighted_by_their_size_in_the_run():
    cells = [Cell(population=900, right=40, wrong=10), Cell(population=100, right=10, wrong=40)]
    figure = estimate(cells)
    assert figure["estimate"] == pytest.approx(0.9 * 0.8 + 0.1 * 0.2, abs=1e-4)  # not the unweighted 0.5
    variance = 0.81 * (1 - 50 / 900) * 0.16 / 49 + 0.01 * (1 - 50 / 100) * 0.16 / 49
    effective = min(0.74 * 0.26 / variance, 100)
    assert (figure["low"], figure["high"]) == pytest.approx(wilson(0.74 * effective, effective), abs=1e-4)
    assert figure["low"] < 0.74 < figure["high"]


def test_strata_judged_whole_and_strata_never_judged():
    census = estimate([Cell(population=10, right=10), Cell(population=5, wrong=5)])
    assert census["estimate"] == pytest.approx(10 / 15, abs=1e-4) and census["low"] < census["estimate"]
    partial = estimate([Cell(population=30, right=3, wrong=1), Cell(population=10)])
    assert partial["unjudged_share"] == 0.25 and partial["strata"] == 1
    assert estimate([Cell(population=10)])["estimate"] is None


def test_human_estimates_from_a_scripted_reviewer(run):
    draw_sample(run, per_stratum=8)
    log = JudgmentLog(Path(audit_dir(run)) / JUDGMENTS_JSONL)
    items = read_items(run)
    answers = {"cat": "right", "dog": "wrong", "red": "right", "sky": "unsure", "tree": "right"}
    log.extend([judgment(item["sample"], item["tag"], answers[item["tag"]], "script") for item in items])
    human = human_estimates(run)
    assert human["judgments"]["items"] == len(items) and human["judgments"]["unsure"] > 0
    assert human["final"]["judgments"] + human["final"]["unsure"] == sum(i["kept"] for i in items)
    assert set(human["rules"]) == {"no_model_support", "clip_similarity"}
    for figure in (human["final"], human["parsed"], human["generated"], *human["rules"].values()):
        assert figure["low"] <= figure["estimate"] <= figure["high"]
    assert math.isclose(human["strata"]["final:parsed"]["sampled"], 8)


def test_no_judgments_no_estimates(run):
    draw_sample(run, per_stratum=2)
    assert human_estimates(run) is None
