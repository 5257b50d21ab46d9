"""The whole engine end to end: synth → parse → train a tagger and a CLIP → parse, generate, clean → report."""

import json
from pathlib import Path

import pytest

from helpers import make_world, shard_digests
from tagmill.pipeline.cli import main
from tagmill.pipeline.job import run

ENGINE = Path(__file__).parents[2] / "configs" / "engine.yaml"
TRAIN = Path(__file__).parents[2] / "configs" / "train" / "tiny.yaml"


@pytest.mark.slow
def test_engine_runs_every_stage_on_a_noisy_world(tmp_path):
    world = make_world(tmp_path / "world", 300, shard_size=100, seed=3,
                       hallucination=0.2, omission=0.3, wrong_attribute=0.1)
    run(["--input", str(world), "--output", str(tmp_path / "round0")])
    assert main(["train", "--shards", str(tmp_path / "round0"), "--out", str(tmp_path / "tagger"),
                 "--config", str(TRAIN), "--set", "epochs=2", "--set", "workers=0"]) in (0, None)
    assert main(["train-clip", "--shards", str(tmp_path / "round0"), "--out", str(tmp_path / "clip"),
                 "--set", "epochs=1", "--set", "workers=0", "--set", "batch_size=64"]) in (0, None)
    out = tmp_path / "engine"
    engine = ["--config", str(ENGINE), "--input", str(world), "--output", str(out),
              "--set", f"generate.model={tmp_path / 'tagger'}", "--set", f"clean.clip={tmp_path / 'clip'}",
              "--set", "generate.device=cpu", "--set", "clean.device=cpu", "--truth", str(world / "truth.jsonl")]
    summary = run(engine)
    assert summary["counts"]["input"] == 300 == summary["counts"]["written"] + summary["counts"]["rejected"]
    report = json.loads((out / "report.json").read_text())
    metrics = report["truth_metrics"]
    assert metrics["generated"]["recall"] >= metrics["parsed"]["recall"]  # generation only adds tags
    assert report["tags_per_sample"]["generated"] > report["tags_per_sample"]["parsed"]
    assert report["tags_per_sample"]["cleaned"] < report["tags_per_sample"]["generated"]
    assert set(report["drops_by_rule"]) <= {"clip_similarity", "cluster_outlier", "no_model_support"}
    assert (out / "report.html").is_file() and (out / "clean_statistics.npz").is_file()

    # a crash that lost a shard: the rerun writes it again, identical, judged by the saved statistics
    written = shard_digests(out)
    for path in (out / "shards").glob("00001*"):
        path.unlink()
    resumed = run(engine)
    assert resumed["shards_skipped_as_complete"] == 2
    assert shard_digests(out) == written
