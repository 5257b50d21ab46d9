"""The audit report: report.json's figures agree with the shards, and report.html renders in Chromium."""

import json

import pyarrow.parquet as pq
import pytest

from helpers import make_world, needs_chromium, render_in_chromium
from tagmill.engine.report.audit import STAGES
from tagmill.pipeline.cli import main
from tagmill.pipeline.job import run, write_report
from test_clean_stage import clean_args, clip, world  # noqa: F401 (fixtures)
from test_generate import samples


@pytest.fixture(scope="module")
def audited(world, clip, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("audited") / "out"
    run(clean_args(world, out, clip, "--truth", str(world / "truth.jsonl")))
    return out


def test_report_json_agrees_with_the_shards(audited):
    report = json.loads((audited / "report.json").read_text())
    written = samples(audited)
    assert report["samples"] == len(written) == report["counts"]["written"]
    assert report["conservation"]["ok"]
    dropped = sum(len(s["dropped"]) for s in written.values())
    assert sum(report["drops_by_rule"].values()) == dropped > 0
    assert sum(row["dropped_total"] for row in report["per_tag"]) == dropped
    assert sum(row["kept"] for row in report["per_tag"]) == sum(len(s["tags"]) for s in written.values())
    cleaned = report["tags_per_sample"]["cleaned"]
    assert cleaned == pytest.approx(sum(len(s["tags"]) for s in written.values()) / len(written), abs=1e-4)
    for example in report["examples"]:
        assert all(example["tag"] in sample["dropped"] for sample in example["samples"])


def test_truth_metrics_per_stage(audited):
    metrics = json.loads((audited / "report.json").read_text())["truth_metrics"]
    assert set(metrics) == set(STAGES)
    # the world has no noise: the captions' tags are the truth, so only cleaning can lose any
    assert metrics["parsed"]["precision"] == metrics["parsed"]["recall"] == 1.0
    assert metrics["cleaned"]["precision"] == 1.0 and metrics["cleaned"]["recall"] < 1.0
    for values in metrics.values():
        assert set(values) >= {"precision", "recall", "f1"}


def test_report_command_rebuilds_the_same_report(audited, capsys):
    before = json.loads((audited / "report.json").read_text())
    (audited / "report.json").unlink()
    (audited / "report.html").unlink()
    assert main(["report", str(audited)]) in (0, None)
    after = json.loads((audited / "report.json").read_text())
    before.pop("truth_metrics")
    assert after == before
    assert (audited / "report.html").is_file()


@needs_chromium
def test_report_page_renders_in_headless_chromium(audited, tmp_path):
    assert render_in_chromium(audited / "report.html", tmp_path / "report.png") == []


def test_a_missing_truth_file_is_a_clear_error_before_the_run(world, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="--truth .* is not a file"):
        run(["--input", str(world), "--output", str(tmp_path / "out"), "--truth", str(tmp_path / "nope.jsonl")])
    assert not (tmp_path / "out").exists()


def test_reporting_on_a_folder_without_shards_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "has no shards/ folder: not the output of `tagmill run`" in capsys.readouterr().err


def browse_data(out) -> dict:
    page = (out / "report.html").read_text(encoding="utf-8")
    start = page.index("<script type='application/json' id='browse-data'>")
    return json.loads(page[page.index(">", start) + 1:page.index("</script>", start)])


def test_thumbnails_are_read_at_the_image_places_or_scanned_where_shards_have_none(tmp_path):
    world = make_world(tmp_path / "world", n=60, shard_size=30)
    out = tmp_path / "out"
    run(["--input", str(world), "--output", str(out)])
    placed = browse_data(out)
    assert set(placed["thumbnails"]) == set(placed["samples"]) and len(placed["thumbnails"]) > 10
    for table in (out / "shards").glob("*.parquet"):  # as shards of schema 2 were written
        pq.write_table(pq.read_table(table).drop_columns(["image_offset", "image_size"]), table)
    write_report(str(out))
    scanned = browse_data(out)
    assert scanned["thumbnails"] == placed["thumbnails"]
    assert all(sample["image"] is None for sample in scanned["samples"].values())
