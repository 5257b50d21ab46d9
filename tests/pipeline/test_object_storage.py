"""`tagmill run` and `tagmill report` on S3 (moto's server on loopback, found through AWS_ENDPOINT_URL):
the same shards as a local run, byte for byte, and a killed run resumed there."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import fsspec

from helpers import jpeg_bytes, make_world, shard_digests, write_manifest
from tagmill.engine import storage
from tagmill.engine.report.judgments import read_judgments
from tagmill.pipeline.cli import main
from tagmill.pipeline.job import run
from tagmill.pipeline.review_server import ReviewSession
from test_clean_stage import clean_args, clip, world  # noqa: F401 (fixtures)
from test_generate import engine_args, save_random_tagger


def upload(folder, url: str) -> str:
    fsspec.filesystem("s3").put(f"{folder}/", url.removeprefix("s3://") + "/", recursive=True)
    return url


def s3_digests(out: str) -> dict[str, str]:
    return {storage.name(path): hashlib.sha256(storage.read_bytes(path)).hexdigest()
            for path in storage.glob(storage.join(out, "shards", "*"))}


def test_the_whole_engine_on_s3_writes_the_shards_of_a_local_run(world, clip, s3_bucket, tmp_path):  # noqa: F811
    tags = [t for t in (world / "tags.txt").read_text().splitlines() if t]
    model = save_random_tagger(tmp_path / "model", tags, threshold=0.5)
    settings = [*clean_args(world, "unused", clip)[4:], "--set", "stages=[parse,generate,clean]"]
    run(engine_args(world, tmp_path / "local", model, *settings))
    remote_world = upload(world, f"{s3_bucket}/world")
    out = f"{s3_bucket}/out"
    summary = run(engine_args(remote_world, out, model, *settings, "--truth", f"{remote_world}/truth.jsonl"))
    assert summary["conservation"]["ok"]
    assert s3_digests(out) == shard_digests(tmp_path / "local")
    assert storage.read_bytes(f"{out}/clean_statistics.npz") == (tmp_path / "local" / "clean_statistics.npz").read_bytes()
    report = json.loads(storage.read_text(f"{out}/report.json"))
    assert report["samples"] == summary["counts"]["written"] and report["truth_metrics"]["cleaned"]["samples"] == 60
    assert storage.read_text(f"{out}/report.html").startswith("<!doctype html>")
    assert main(["report", out]) == 0


def test_a_killed_run_resumes_on_s3(s3_bucket, tmp_path):
    local_world = make_world(tmp_path / "world", n=1200, shard_size=100)
    run(["--input", str(local_world), "--output", str(tmp_path / "reference")])
    remote_world, out = upload(local_world, f"{s3_bucket}/world"), f"{s3_bucket}/out"
    command = [sys.executable, "-m", "tagmill.pipeline.cli", "run", "--input", remote_world, "--output", out]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                               env=os.environ.copy())
    deadline = time.time() + 120
    while time.time() < deadline and len(storage.glob(f"{out}/shards/*_stats.json")) < 2 and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    written_before_kill = len(storage.glob(f"{out}/shards/*_stats.json"))
    summary = run(["--input", remote_world, "--output", out])
    assert summary["shards_skipped_as_complete"] == written_before_kill < 12
    assert s3_digests(out) == shard_digests(tmp_path / "reference")


def test_a_manifest_on_s3_reads_its_images_and_vocabulary_beside_it(s3_bucket, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "in" / "tags.txt").write_text("square\ncircle\n")
    write_manifest(tmp_path / "in" / "manifest.jsonl", [{"id": "a", "image": "a.jpg", "caption": "a red square"},
                                                {"id": "b", "image": "missing.jpg", "caption": "a blue circle"}])
    remote = upload(tmp_path / "in", f"{s3_bucket}/in")
    summary = run(["--input", f"{remote}/manifest.jsonl", "--output", f"{s3_bucket}/out"])
    assert (summary["counts"]["written"], summary["counts"]["rejected_by_reason"]) == (1, {"image_missing": 1})
    assert summary["counts"]["tags"] == {"square": 1} and summary["vocabulary"]["size"] == 2


def test_synth_run_report_train_and_eval_all_on_s3(s3_bucket, capsys):
    """The README's commands with every path a URL: nothing of it touches a local folder."""
    world, out, model = f"{s3_bucket}/world", f"{s3_bucket}/out", f"{s3_bucket}/model"
    assert main(["synth", "--out", world, "--n", "120", "--shard-size", "60", "--seed", "3"]) == 0
    assert main(["run", "--input", world, "--output", out, "--truth", f"{world}/truth.jsonl"]) == 0
    assert main(["report", out, "--truth", f"{world}/truth.jsonl"]) == 0
    assert main(["train", "--shards", out, "--out", model, "--set", "epochs=1", "--set", "workers=0"]) == 0
    capsys.readouterr()
    assert main(["eval", "--model", model, "--shards", out, "--truth", f"{world}/truth.jsonl"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0.0 <= scores["mAP"] <= 1.0 and scores["samples"] == 120
    assert {"model.safetensors", "tagger.json", "train.json", "metrics.jsonl"} <= storage.list_names(model)


def test_an_audit_sample_and_review_of_a_run_on_s3_feed_its_report(s3_bucket, tmp_path, capsys):
    world, out = f"{s3_bucket}/world", f"{s3_bucket}/out"
    make_world(tmp_path / "world", 40, shard_size=20, seed=4, hallucination=0.2)
    upload(tmp_path / "world", world)
    assert main(["run", "--input", world, "--output", out]) == 0
    assert main(["audit", "sample", out, "--per-stratum", "4"]) == 0
    assert f"in {out}/audit/sample.jsonl" in capsys.readouterr().out
    session = ReviewSession(out, "ann")
    assert session.image(0) is not None  # from the run's shard on S3
    for index, item in enumerate(session.items):
        session.answer({"index": index, "sample": item["sample"], "tag": item["tag"], "verdict": "right"})
    assert len(read_judgments(f"{out}/audit/judgments.jsonl")) == len(session.items)
    assert ReviewSession(out, "ann").answers == {i: "right" for i in range(len(session.items))}  # resumed from S3
    assert main(["report", out]) == 0
    human = json.loads(storage.read_text(f"{out}/report.json"))["human_estimates"]
    assert human["judgments"]["items"] == len(session.items)
