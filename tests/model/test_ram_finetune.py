"""Fine-tuning an imported RAM-family model on a run's shards (`configs/train/ram-finetune.yaml`), its
tags moved onto the shards' and the missing ones added open-set from a CLIP text encoder; and
`tagmill add-tags`, which adds tags to an imported model without training."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from model_helpers import one_torch_thread  # noqa: F401
from ram_helpers import tiny_model
from tagmill.engine.synth.world import SynthConfig, synthesize
from tagmill.model.checkpoint import load_model, read_meta, save_model
from tagmill.model.clip import create_clip, embed_texts, load_clip
from tagmill.model.evaluate import evaluate_checkpoint
from tagmill.model.factory import build_model
from tagmill.model.predict import LoadedTagger
from tagmill.model.ram.config import ram_config
from tagmill.model.ram.retag import NAME_PROMPTS, retag
from tagmill.model.train import _parameter_groups, load_train_config, train
from tagmill.pipeline.cli import main
from tagmill.pipeline.job import run

FINETUNE = Path(__file__).resolve().parents[2] / "configs" / "train" / "ram-finetune.yaml"
SETTINGS = {"workers": 0, "batch_size": 8, "holdout": 0.25, "min_support": 2, "checkpoint_every": 4, "lr": 1e-4,
            "warmup_steps": 2}


def _finetune_config(**more):
    settings = {**SETTINGS, **more}
    return load_train_config(FINETUNE, [f"{key}={json.dumps(value)}" for key, value in settings.items()])


def ram_plus_64(tags: list[str], seed: int = 0):
    """A tiny RAM++ whose tag embeddings are 64 wide, as the tiny CLIP's text embeddings."""
    config = ram_config({"name": "tiny-ram-plus-64", "family": "ram_plus", "image_size": 64,
                         "swin": {"embed_dim": 8, "depths": [2, 2, 2], "heads": [1, 2, 4], "window": 4},
                         "head": {"hidden": 32, "layers": 1, "heads": 4, "intermediate": 64}, "embed_dim": 64,
                         "descriptions_per_tag": 3, "caption_branch": {"layers": 0}})
    torch.manual_seed(seed)
    model = build_model(config, len(tags)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    model.thresholds.copy_(torch.linspace(0.3, 0.7, len(tags)))
    return model


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    world = tmp_path_factory.mktemp("world")
    synthesize(world, SynthConfig(n=48, shard_size=24, image_size=32))
    out = tmp_path_factory.mktemp("run")
    with contextlib.redirect_stdout(io.StringIO()):
        run(["--input", str(world), "--output", str(out)])
    return out


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> str:
    """A random tiny CLIP saved as open_clip's pretrained .bin files are (a state dict)."""
    torch.manual_seed(2)
    model, _, _ = create_clip("tiny-clip")
    path = tmp_path_factory.mktemp("clip") / "open_clip_pytorch_model.bin"
    torch.save(model.state_dict(), path)
    return f"tiny-clip:{path}"


def _imported(shards: Path, folder: Path) -> tuple[Path, list[str], str, str]:
    """A RAM++ folder that knows the shards' tags but two, and one of them under a synonym."""
    vocab = json.loads((shards / "vocab.json").read_text())
    tags = vocab["tags"]
    renamed = next(t for t in tags if vocab["synonyms"].get(t))
    model_tags = [vocab["synonyms"][renamed][0] if t == renamed else t for t in tags[:-2]] + ["unicorn"]
    save_model(ram_plus_64(model_tags), folder, model_tags)
    return folder, model_tags, renamed, vocab["synonyms"][renamed][0]


def test_the_start_keeps_known_tags_and_embeds_the_new_ones_from_clip(shards, clip_file, tmp_path):
    folder, model_tags, renamed, synonym = _imported(shards, tmp_path / "imported")
    descriptions = tmp_path / "descriptions.json"
    tags = json.loads((shards / "vocab.json").read_text())["tags"]
    described = tags[-1]
    descriptions.write_text(json.dumps({described: ["a first description", "a second one"]}))
    train(shards, tmp_path / "start", _finetune_config(epochs=0, init_from=str(folder), text_encoder=clip_file,
                                                       descriptions=str(descriptions)))
    start, start_tags = load_model(tmp_path / "start")
    original, _ = load_model(folder)
    assert start_tags == tags and start.config == original.config
    old, new = original.labels.embeddings.unflatten(0, (-1, 3)), start.labels.embeddings.unflatten(0, (-1, 3))
    assert torch.equal(new[tags.index(renamed)], old[model_tags.index(synonym)])
    assert torch.equal(new[0], old[0]) and torch.equal(start.encoder.state_dict()["swin.norm.weight"],
                                                         original.encoder.state_dict()["swin.norm.weight"])
    clip, _, tokenizer = load_clip(clip_file)
    with torch.no_grad():
        texts = embed_texts(clip, tokenizer, ["a first description", "a second one"], ("{}",))
        name = embed_texts(clip, tokenizer, [tags[-2]], NAME_PROMPTS)[0]
    torch.testing.assert_close(new[-1], texts[[0, 1, 0]])  # descriptions cycled over the three slots
    torch.testing.assert_close(new[-2], name.expand(3, -1))  # no descriptions: the name in every slot


def test_a_few_fine_tuning_steps_give_a_model_that_loads_tags_and_evaluates(shards, clip_file, tmp_path):
    folder, *_ = _imported(shards, tmp_path / "imported")
    summary = train(shards, tmp_path / "tuned", _finetune_config(epochs=1, init_from=str(folder),
                                                                 text_encoder=clip_file, grad_checkpointing=True))
    assert summary["steps"] >= 3 and np.isfinite(summary["holdout"]["mAP"])
    tuned, tags = load_model(tmp_path / "tuned")
    original, _ = load_model(folder)
    key = "encoder.swin.patch_embed.proj.weight"
    assert not torch.equal(tuned.state_dict()[key], original.state_dict()[key])  # trained, encoder included
    assert read_meta(tmp_path / "tuned")["config"]["family"] == "ram_plus"
    with tarfile.open(next((shards / "shards").glob("*.tar"))) as tar:
        jpeg = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith(".jpg"))).read()
    assert LoadedTagger(tmp_path / "tuned", "cpu").scores([jpeg]).shape == (1, len(tags))
    assert evaluate_checkpoint(str(tmp_path / "tuned"), str(shards), split="holdout")["samples"] > 0


def test_tags_cannot_be_added_to_ram_without_a_text_encoder(shards, tmp_path):
    folder, *_ = _imported(shards, tmp_path / "imported")
    with pytest.raises(ValueError, match="needs a CLIP text encoder"):
        train(shards, tmp_path / "tuned", _finetune_config(epochs=0, init_from=str(folder)))


def test_tag2text_moves_its_learned_queries_and_classifier_rows():
    model = tiny_model("tag2text", num_tags=4)
    moved, added = retag(model, ["a", "b", "c", "d"], ["c", "new", "a"])
    assert added == ["new"] and moved.num_tags == 3
    assert torch.equal(moved.labels.queries[0], model.labels.queries[2])
    assert torch.equal(moved.classifier.weight[0, 2], model.classifier.weight[0, 0])
    assert torch.equal(moved.classifier.bias[0, 0], model.classifier.bias[0, 2])
    assert moved.thresholds.tolist() == pytest.approx([0.68, 0.68, 0.68])


def test_add_tags_writes_a_model_that_scores_the_new_tags_too(clip_file, tmp_path):
    tags = ["cat", "dog"]
    save_model(ram_plus_64(tags), tmp_path / "model", tags)
    (tmp_path / "new.txt").write_text("dog\nzebra\nhot air balloon\n")
    assert main(["add-tags", "--model", str(tmp_path / "model"), "--tags", str(tmp_path / "new.txt"),
                 "--clip", clip_file, "--out", str(tmp_path / "more")]) == 0
    model, more = load_model(tmp_path / "more")
    assert more == ["cat", "dog", "zebra", "hot air balloon"] and model.num_tags == 4
    assert model.thresholds.tolist()[:2] == pytest.approx([0.3, 0.7])
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4)


@pytest.mark.parametrize("family", ["ram", "ram_plus", "tag2text"])
def test_biases_norms_and_label_queries_are_not_decayed(family):
    model = tiny_model(family)
    decay, no_decay = (group["params"] for group in _parameter_groups(model, 0.05))
    names = {id(p): n for n, p in model.named_parameters()}
    assert not [names[id(p)] for p in decay if names[id(p)].endswith(".bias") or "queries" in names[id(p)]]
    assert len(decay) + len(no_decay) == len(list(model.parameters()))
