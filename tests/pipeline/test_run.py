"""`tagmill run` end to end on the embedded runner: outputs, conservation, determinism, resume."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers import jpeg_bytes, make_world, read_jsonl, shard_digests, write_manifest
from tagmill.pipeline.job import run


def run_cli(*args: str) -> dict:
    return run(list(args))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"), n=300, shard_size=100)


@pytest.fixture(scope="module")
def first_run(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    run_cli("--input", str(world), "--output", str(out))
    return out


def test_writes_every_output_file(first_run):
    names = sorted(p.name for p in first_run.iterdir())
    assert names == ["config.yaml", "input_index", "input_index.json", "rejects.jsonl", "report.html", "report.json",
                     "run.json", "shards", "vocab.json"]
    assert json.loads((first_run / "input_index.json").read_text()) == {"00000": 100, "00001": 100, "00002": 100}
    shard_files = sorted(p.name for p in (first_run / "shards").iterdir())
    for shard in ("00000", "00001", "00002"):
        assert {f"{shard}.tar", f"{shard}.parquet", f"{shard}_stats.json", f"{shard}_rejects.jsonl"} <= set(shard_files)
    assert not [n for n in shard_files if n.endswith(".tmp")]


def test_parsed_tags_equal_the_truth_without_noise(world, first_run):
    truth = {row["key"]: row["tags"] for row in read_jsonl(world / "truth.jsonl")}
    rows = [row for p in sorted((first_run / "shards").glob("*.parquet")) for row in pq.read_table(p).to_pylist()]
    assert len(rows) == 300
    assert {row["id"]: row["tags"] for row in rows} == truth


def test_tar_holds_image_and_json_with_tag_sources(first_run):
    with tarfile.open(first_run / "shards" / "00000.tar") as tar:
        names = tar.getnames()
        sample = json.loads(tar.extractfile(names[1]).read())
    assert names[:2] == ["000000000.jpg", "000000000.json"]
    assert sample["tags"] and set(sample["tags"]) == set(sample["tag_sources"])
    source = sample["tag_sources"][sample["tags"][0]][0]
    assert source["source"] == "parsed" and source["text"] and source["caption"] == 0
    assert sample["image"]["width"] == 64 and sample["image"]["format"] == "JPEG"


def test_the_parquet_places_each_image_in_its_tar(first_run):
    for table in sorted((first_run / "shards").glob("*.parquet")):
        data = (table.parent / f"{table.stem}.tar").read_bytes()
        with tarfile.open(table.parent / f"{table.stem}.tar") as tar:
            images = {m.name.split(".")[0]: tar.extractfile(m).read() for m in tar if m.name.endswith(".jpg")}
        rows = pq.read_table(table, columns=["id", "image_offset", "image_size"]).to_pylist()
        assert {r["id"]: data[r["image_offset"]:r["image_offset"] + r["image_size"]] for r in rows} == images


def test_run_json_states_conservation_and_counts(first_run):
    report = json.loads((first_run / "run.json").read_text())
    assert report["conservation"] == {"ok": True, "input": 300, "written_plus_rejected": 300}
    assert report["counts"]["written"] == 300 and report["counts"]["rejected"] == 0
    assert report["beam_counters"]["samples_read"] == 300
    assert sum(report["counts"]["tags"].values()) == report["beam_counters"]["tags_parsed"]
    assert report["vocabulary"] == {"source": "given", "size": 26}
    assert set(report["timings_s"]) == {"plan", "vocabulary", "pipeline", "finalize"}


def test_rerun_into_a_new_folder_is_byte_identical(world, first_run, tmp_path):
    run_cli("--input", str(world), "--output", str(tmp_path / "again"))
    assert shard_digests(tmp_path / "again") == shard_digests(first_run)


def test_rerun_skips_complete_shards_and_finishes_partial_ones(world, first_run, tmp_path):
    out = tmp_path / "out"
    run_cli("--input", str(world), "--output", str(out))
    (out / "shards" / "00001_stats.json").unlink()  # as if killed after the tar, before the stats
    (out / "shards" / "00002.tar").write_bytes(b"half a tar")  # as if killed mid-write, then renamed
    (out / "shards" / "00002_stats.json").unlink()
    (out / "shards" / "00000.parquet.tmp").write_bytes(b"leftover")
    report = run_cli("--input", str(world), "--output", str(out))
    assert report["shards_skipped_as_complete"] == 1
    digests = shard_digests(out)
    digests.pop("00000.parquet.tmp")
    assert digests == shard_digests(first_run)


def test_an_id_repeated_in_a_later_shard_is_a_duplicate_also_after_its_first_shard_was_written(tmp_path):
    (tmp_path / "image.jpg").write_bytes(jpeg_bytes())
    lines = [{"id": sample_id, "image": "image.jpg", "caption": "a red circle"} for sample_id in "abcdea"]
    write_manifest(tmp_path / "manifest.jsonl", lines)
    args = ["--input", str(tmp_path / "manifest.jsonl"), "--output", str(tmp_path / "out"),
            "--set", "input.samples_per_shard=2"]
    run_cli(*args)
    rejects = read_jsonl(tmp_path / "out" / "shards" / "00002_rejects.jsonl")
    assert [(r["id"], r["reason"]) for r in rejects] == [("a", "id_duplicate")]
    reference = shard_digests(tmp_path / "out")
    (tmp_path / "out" / "shards" / "00002_stats.json").unlink()  # resumed: only shard 2 is read again
    assert run_cli(*args)["shards_skipped_as_complete"] == 2
    assert shard_digests(tmp_path / "out") == reference


def test_a_rerun_over_input_that_changed_under_written_shards_is_refused(tmp_path):
    world = make_world(tmp_path / "world", n=60, shard_size=30)
    run_cli("--input", str(world), "--output", str(tmp_path / "out"))
    with tarfile.open(world / "00000.tar") as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar.getmembers()]
    extra = [(tarfile.TarInfo("extra." + member.name.split(".", 1)[1]), data) for member, data in members[:3]]
    with tarfile.open(world / "00000.tar", "w") as tar:  # one more sample than shard 00000 was written from
        for member, data in members + extra:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    with pytest.raises(ValueError, match=r"shards \[.00000.\] were written from other input"):
        run_cli("--input", str(world), "--output", str(tmp_path / "out"))


def test_a_rerun_reads_the_ids_of_no_unchanged_input_again(tmp_path):
    """Each task's ids are kept with its file's version; a rerun takes them from there, writing none again."""
    world = make_world(tmp_path / "world", n=60, shard_size=30)
    args = ("--input", str(world), "--output", str(tmp_path / "out"))
    run_cli(*args)
    kept = tmp_path / "out" / "input_index" / "00000.json"
    saved = json.loads(kept.read_text())
    assert saved["source"] == "00000.tar" and len(saved["ids"]) == 30 and saved["ids"][0] == "000000000"
    written, reference = kept.stat().st_mtime_ns, shard_digests(tmp_path / "out")
    (tmp_path / "out" / "shards" / "00001_stats.json").unlink()  # shard 1 is read again, its ids are not
    assert run_cli(*args)["shards_skipped_as_complete"] == 1
    assert kept.stat().st_mtime_ns == written and shard_digests(tmp_path / "out") == reference


def test_a_tar_read_only_in_part_keeps_no_ids_so_its_whole_read_later_is_noticed(tmp_path):
    """A tar that breaks off (damaged, or a read error that passes) is indexed again by every run."""
    world = make_world(tmp_path / "world", n=60, shard_size=30)
    whole = (world / "00001.tar").read_bytes()
    (world / "00001.tar").write_bytes(whole[:len(whole) // 2])
    run_cli("--input", str(world), "--output", str(tmp_path / "out"))
    assert sorted(p.name for p in (tmp_path / "out" / "input_index").iterdir()) == ["00000.json"]
    (world / "00001.tar").write_bytes(whole)
    with pytest.raises(ValueError, match=r"shards \[.00001.\] were written from other input"):
        run_cli("--input", str(world), "--output", str(tmp_path / "out"))


def test_a_killed_run_resumes_to_identical_output(tmp_path):
    world = make_world(tmp_path / "world", n=1200, shard_size=100)
    reference, out = tmp_path / "reference", tmp_path / "out"
    run_cli("--input", str(world), "--output", str(reference))
    command = [sys.executable, "-m", "tagmill.pipeline.cli", "run", "--input", str(world), "--output", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stats = out / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(stats.glob("*_stats.json"))) < 2 and process.poll() is None:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written_before_kill = len(list(stats.glob("*_stats.json")))
    report = run_cli("--input", str(world), "--output", str(out))
    assert report["shards_skipped_as_complete"] == written_before_kill < 12
    assert shard_digests(out) == shard_digests(reference)


def test_another_config_in_the_same_output_is_refused(world, first_run, tmp_path):
    out = tmp_path / "out"
    run_cli("--input", str(world), "--output", str(out))
    with pytest.raises(ValueError, match="another config"):
        run_cli("--input", str(world), "--output", str(out), "--set", "input.max_caption_chars=50")


def test_without_a_vocabulary_one_is_mined(world, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for tar in sorted(world.glob("*.tar")):
        (corpus / tar.name).write_bytes(tar.read_bytes())
    report = run_cli("--input", str(corpus), "--output", str(tmp_path / "out"), "--set", "parse.mine.min_count=3")
    vocab = json.loads((tmp_path / "out" / "vocab.json").read_text())
    assert vocab["source"] == "mined" and report["vocabulary"]["source"] == "mined"
    assert {"star", "triangle", "red", "blue"} <= set(vocab["tags"])
    assert vocab["categories"]["red"] == "attribute"
    assert report["counts"]["tags"]["star"] > 0


@pytest.mark.slow
def test_multi_process_run_gives_the_same_shards(world, first_run, tmp_path):
    run_cli("--input", str(world), "--output", str(tmp_path / "mp"), "--set", "runner.workers=2")
    assert shard_digests(tmp_path / "mp") == shard_digests(first_run)


def test_shards_split_across_bundles_are_written_whole(world, first_run, tmp_path):
    report = run_cli("--input", str(world), "--output", str(tmp_path / "out"),
                     "--set", "runner.workers=2", "--set", "runner.break_fusion=true")
    assert report["beam_counters"]["shards_gathered_records"] > 0
    assert report["conservation"]["ok"]
    assert shard_digests(tmp_path / "out") == shard_digests(first_run)


def test_the_bundle_based_direct_runner_writes_the_same_shards(world, first_run, tmp_path):
    run_cli("--input", str(world), "--output", str(tmp_path / "out"), "--set", "runner.name=BundleBasedDirectRunner")
    assert shard_digests(tmp_path / "out") == shard_digests(first_run)
