"""An imported RAM++ model as the engine's generator: the run's vocabulary mapped onto its tags by name
and synonyms, one-sided tags in run.json, a CLIP in open_clip's own file layouts, conservation and
resume; on real COCO images with the reference fixture where `../shared/data` is there."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from helpers import make_world, shard_digests
from tagmill.model.checkpoint import save_model
from tagmill.model.clip import create_clip, load_clip
from tagmill.model.evaluate import evaluate_checkpoint
from tagmill.model.factory import build_model
from tagmill.model.predict import LoadedTagger
from tagmill.model.ram.config import ram_config
from tagmill.pipeline.cli import main
from tagmill.pipeline.job import run

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FIXTURES = SHARED / "ram" / "fixtures"
ENGINE = Path(__file__).parents[2] / "configs" / "engine.yaml"


def save_tiny_ram_plus(folder: Path, tags: list[str], threshold: float = 0.5) -> Path:
    """A RAM++ folder as `import-model` writes it: 64 px, a 16-wide Swin, random weights."""
    config = ram_config({"name": "tiny-ram-plus", "family": "ram_plus", "image_size": 64,
                         "swin": {"embed_dim": 8, "depths": [2, 2, 2], "heads": [1, 2, 4], "window": 4},
                         "head": {"hidden": 32, "layers": 2, "heads": 4, "intermediate": 64}, "embed_dim": 24,
                         "descriptions_per_tag": 3, "caption_branch": {"layers": 0}})
    torch.manual_seed(0)
    model = build_model(config, len(tags)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    model.thresholds.fill_(threshold)
    save_model(model, folder, tags)
    return folder


def save_open_clip_file(folder: Path, arch: str, suffix: str) -> tuple[str, dict]:
    """A random-weight CLIP saved as open_clip's pretrained files are: a state dict in .bin
    (torch.save) or .safetensors. Returns the `ARCH:FILE` spec and the weights."""
    torch.manual_seed(1)
    model, _, _ = create_clip(arch)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = folder / f"open_clip_pytorch_model{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    return f"{arch}:{path}", state


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_a_clip_loads_from_open_clips_own_file_layouts(tmp_path, suffix):
    spec, state = save_open_clip_file(tmp_path, "tiny-clip", suffix)
    model, _, _ = load_clip(spec)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def _model_tags(world: Path) -> tuple[list[str], str, str, str]:
    """The world's tags as a differently named model has them: one under a synonym, one missing, one extra."""
    tags = [t for t in (world / "tags.txt").read_text().splitlines() if t]
    synonyms = json.loads((world / "synonyms.json").read_text())
    renamed = next(t for t in tags if synonyms.get(t))
    missing = next(t for t in reversed(tags) if t != renamed)
    model_tags = [synonyms[renamed][0] if t == renamed else t for t in tags if t != missing] + ["unicorn"]
    return model_tags, renamed, synonyms[renamed][0], missing


def test_an_imported_ram_plus_generates_under_the_run_names_and_resumes_identically(tmp_path):
    world = make_world(tmp_path / "world", 40, shard_size=20)
    model_tags, renamed, synonym, missing = _model_tags(world)
    model = save_tiny_ram_plus(tmp_path / "ram-plus", model_tags, threshold=0.3)  # its scores are near 0.4
    clip, _ = save_open_clip_file(tmp_path / "clip", "tiny-clip", ".bin")
    out = tmp_path / "out"
    args = ["--config", str(ENGINE), "--input", str(world), "--output", str(out),
            "--set", f"generate.model={model}", "--set", f"clean.clip={clip}", "--set", "generate.device=cpu",
            "--set", "clean.device=cpu", "--set", "generate.batch_size=8", "--set", "clean.batch_size=8"]
    summary = run(args)
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert counts["input"] == 40 == counts["written"] + counts["rejected"] and counts["written"] == 40
    mapping = summary["generator_tags"]
    assert mapping["family"] == "ram_plus" and mapping["matched_by_synonym"] == {renamed: synonym}
    assert mapping["model_only"] == ["unicorn"] and mapping["vocabulary_only"] == [missing]
    assert set(counts["tags"]) <= set(model_tags) - {synonym, "unicorn"} | {renamed, missing}
    assert summary["beam_counters"]["tags_generated"] > 0

    written = shard_digests(out)
    for path in (out / "shards").glob("00001*"):
        path.unlink()
    resumed = run(args)
    assert resumed["shards_skipped_as_complete"] == 1 and shard_digests(out) == written

    result = evaluate_checkpoint(str(model), str(out))
    assert result["unmatched_model_tags"] == 1 and {row["tag"] for row in result["per_tag"]} >= {renamed}


def test_an_images_scores_do_not_depend_on_its_place_in_the_batch(tmp_path):
    """What makes a resumed run repeat the generated scores: every image scores the same bits wherever it sits
    in a batch of the fixed size (the last row's last elements once took another kernel path), on one torch
    thread as the engine's workers run (`generate.cpu_threads`)."""
    world = make_world(tmp_path / "world", 16, shard_size=16)
    tagger = LoadedTagger(str(save_tiny_ram_plus(tmp_path / "ram-plus", _model_tags(world)[0])), device="cpu")
    with tarfile.open(world / "00000.tar") as tar:
        images = [tar.extractfile(member).read() for member in tar if member.name.endswith(".jpg")]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first, second, shifted = (tagger.scores(images[start:start + 8]) for start in (0, 8, 4))
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(shifted, np.concatenate([first[4:], second[:4]]))


def _coco_manifest(path: Path, count: int) -> Path:
    images = SHARED / "coco" / "images.jsonl"
    if not images.is_file() or not (FIXTURES / "ram_plus_tiny.pth").is_file():
        pytest.skip(f"COCO images or the RAM++ fixture are not under {SHARED} (reference data, not in the repo)")
    lines = [json.loads(line) for line in images.read_text().splitlines()[:count]]
    with open(path, "w") as f:
        for index, line in enumerate(lines):
            image = str(SHARED / "coco" / line["image"])
            row = {"id": f"coco-{index:03d}", "image": image, "captions": line["captions"]}
            f.write(json.dumps(row) + "\n")
    return path


def _fixture_lists(tmp_path: Path) -> tuple[Path, Path]:
    """The fixture's 1,000 RAM tags and thresholds, and a run vocabulary of the same tags that calls
    cake `gateau` (with cake as its synonym) and adds one tag RAM does not have."""
    lines = (SHARED / "ram" / "ram_tag_list.txt").read_text().splitlines()[:1000]
    thresholds = (SHARED / "ram" / "ram_tag_list_threshold.txt").read_text().splitlines()[:1000]
    (tmp_path / "tags.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "thresholds.txt").write_text("\n".join(thresholds) + "\n")
    vocab = ["gateau" if t == "cake" else t for t in lines] + ["unicorn"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (tmp_path / "synonyms.json").write_text(json.dumps({"gateau": ["cake"]}))
    return tmp_path / "vocab.txt", tmp_path / "synonyms.json"


@pytest.mark.slow
def test_the_engine_on_real_images_with_the_imported_reference_ram_plus(tmp_path):
    manifest = _coco_manifest(tmp_path / "coco.jsonl", 48)
    vocab, synonyms = _fixture_lists(tmp_path)
    model = tmp_path / "ram-plus"
    assert main(["import-model", str(FIXTURES / "ram_plus_tiny.pth"), "--family", "ram_plus", "--out", str(model),
                 "--tags", str(tmp_path / "tags.txt"), "--thresholds", str(tmp_path / "thresholds.txt")]) == 0
    clip, _ = save_open_clip_file(tmp_path / "clip", "tiny-clip", ".safetensors")
    out = tmp_path / "out"
    args = ["--config", str(ENGINE), "--input", str(manifest), "--output", str(out),
            "--set", f"parse.vocab={vocab}", "--set", f"parse.synonyms={synonyms}",
            "--set", "input.samples_per_shard=16",
            "--set", f"generate.model={model}", "--set", "generate.margin=-0.3", "--set", f"clean.clip={clip}",
            "--set", "generate.device=cpu", "--set", "clean.device=cpu", "--set", "generate.batch_size=8",
            "--set", "clean.batch_size=8"]
    summary = run(args)
    assert summary["conservation"]["ok"] and summary["counts"]["written"] == 48
    mapping = summary["generator_tags"]
    assert mapping["matched"] == 1000 and mapping["matched_by_synonym"] == {"gateau": "cake"}
    assert mapping["vocabulary_only"] == ["unicorn"] and mapping["model_only"] == []
    assert "cake" not in summary["counts"]["tags"] and summary["beam_counters"]["tags_generated"] > 0
    report = json.loads((out / "report.json").read_text())
    assert report["tags_per_sample"]["generated"] > report["tags_per_sample"]["parsed"]

    written = shard_digests(out)
    for path in (out / "shards").glob("00001*"):
        path.unlink()
    resumed = run(args)
    assert resumed["shards_skipped_as_complete"] == 2 and shard_digests(out) == written
