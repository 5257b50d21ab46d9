"""The Clean stage in a real FnApiRunner pipeline: CLIP scores, saved per-tag statistics, recorded drops."""

import json

import numpy as np
import pytest
import torch

from helpers import make_world, shard_digests
from tagmill.engine.clean import Rule, load_statistics
from tagmill.model.clip import create_clip
from tagmill.model.clip_train import save_clip
from tagmill.pipeline.job import run
from test_generate import engine_args, samples, save_random_tagger



@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A randomly initialised tiny CLIP, saved once: the plumbing, not the quality, is under test here."""
    torch.manual_seed(0)
    model, _, _ = create_clip("tiny-clip")
    folder = tmp_path_factory.mktemp("clip")
    save_clip(model, "tiny-clip", folder)
    return folder


def clean_args(world, out, clip, *extra):
    return ["--input", str(world), "--output", str(out), "--set", "stages=[parse,clean]",
            "--set", f"clean.clip={clip}", "--set", "clean.device=cpu",
            "--set", "clean.rules.outliers.min_samples=10", *extra]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("world"), 60, shard_size=20)


@pytest.fixture(scope="module")
def cleaned(world, clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    return run(clean_args(world, out, clip)), out


def test_every_drop_is_explained_by_the_saved_statistics(cleaned):
    summary, out = cleaned
    assert summary["counts"]["written"] == 60 and summary["counts"]["rejected"] == 0
    statistics = load_statistics(out / "clean_statistics.npz")
    drops = 0
    for sample in samples(out).values():
        assert set(sample["tags"]) == set(sample["tag_sources"]) - set(sample["dropped"])
        for tag in sample["tag_sources"]:
            scores, stats = sample["scores"][tag], statistics[tag]
            below = scores["clip"] < stats.similarity_threshold
            far = stats.cutoff is not None and scores["outlier"] > stats.cutoff
            if below:
                assert sample["dropped"][tag] == {"rule": Rule.SIMILARITY, "score": pytest.approx(scores["clip"]),
                                                  "threshold": pytest.approx(stats.similarity_threshold)}
            elif far:
                assert sample["dropped"][tag]["rule"] == Rule.OUTLIER
            else:
                assert tag not in sample["dropped"]
            drops += below or far
    assert drops > 0
    counted = {k: v for k, v in summary["beam_counters"].items() if k.startswith("dropped_")}
    assert sum(counted.values()) == drops


def test_some_tags_are_clustered(cleaned):
    _, out = cleaned
    statistics = load_statistics(out / "clean_statistics.npz")
    clustered = [s for s in statistics.values() if s.centroids is not None]
    assert clustered and all(np.allclose(np.linalg.norm(s.centroids, axis=1), 1, atol=1e-5) for s in clustered)


def test_cleaning_is_deterministic_and_resumes_with_the_saved_statistics(world, clip, cleaned, tmp_path):
    _, first = cleaned
    again = tmp_path / "again"
    run(clean_args(world, again, clip))
    assert shard_digests(again) == shard_digests(first)
    # lose one shard, as a crash would: the rerun judges it by the statistics the first run saved
    for path in (again / "shards").glob("00001*"):
        path.unlink()
    statistics_before = (again / "clean_statistics.npz").read_bytes()
    run(clean_args(world, again, clip))
    assert (again / "clean_statistics.npz").read_bytes() == statistics_before
    assert shard_digests(again) == shard_digests(first)


def test_a_fixed_similarity_threshold_applies_to_every_tag(world, clip, tmp_path):
    out = tmp_path / "out"
    run(clean_args(world, out, clip, "--set", "clean.rules.similarity.threshold=2.0",
                   "--set", "clean.rules.outliers.enabled=false"))
    found = samples(out)
    assert all(s["tags"] == [] for s in found.values())  # no cosine similarity reaches 2
    assert {d["rule"] for s in found.values() for d in s["dropped"].values()} == {Rule.SIMILARITY}
    report = json.loads((out / "run.json").read_text())
    assert report["counts"]["written"] == 60


def test_without_clip_rules_only_the_taggers_support_is_judged(world, tmp_path):
    tags = [t for t in (world / "tags.txt").read_text().splitlines() if t]
    model = save_random_tagger(tmp_path / "model", tags, threshold=0.5)
    out = tmp_path / "out"
    run(engine_args(world, out, model, "--set", "stages=[parse,generate,clean]",
                    "--set", "clean.rules.similarity.enabled=false", "--set", "clean.rules.outliers.enabled=false"))
    assert not (out / "clean_statistics.npz").exists()
    found = samples(out)
    assert len(found) == 60
    dropped = 0
    for sample in found.values():
        parsed = {t for t, entries in sample["tag_sources"].items() if any(e["source"] == "parsed" for e in entries)}
        for tag, scores in sample["scores"].items():
            assert set(scores) == {"tagger"}
            if tag in parsed and scores["tagger"] < 0.5:
                assert sample["dropped"][tag] == {"rule": Rule.SUPPORT, "score": pytest.approx(scores["tagger"]),
                                                  "threshold": 0.5}
                dropped += 1
            else:
                assert tag not in sample["dropped"]
    assert dropped > 0


@pytest.mark.slow
def test_the_whole_engine_writes_the_same_shards_on_every_runner(world, clip, tmp_path):
    """In-process, on two worker processes with fusion broken before the writer (a shard's records
    arrive in several bundles), and on Beam's bundle-based direct runner."""
    tags = [t for t in (world / "tags.txt").read_text().splitlines() if t]
    model = save_random_tagger(tmp_path / "model", tags, threshold=0.5)
    runners = {"in-process": [], "split": ["runner.workers=2", "runner.break_fusion=true"],
               "bundle-based": ["runner.name=BundleBasedDirectRunner"]}
    reports = {}
    for name, settings in runners.items():
        out = tmp_path / name
        reports[name] = run(engine_args(world, out, model, *clean_args(world, out, clip)[4:],
                                        "--set", "stages=[parse,generate,clean]",
                                        *[arg for setting in settings for arg in ("--set", setting)]))
    assert reports["split"]["beam_counters"]["shards_gathered_records"] > 0
    for name in ("split", "bundle-based"):
        assert shard_digests(tmp_path / name) == shard_digests(tmp_path / "in-process")
        statistics = tmp_path / name / "clean_statistics.npz"
        assert statistics.read_bytes() == (tmp_path / "in-process" / "clean_statistics.npz").read_bytes()
