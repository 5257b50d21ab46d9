"""The optional tag-guided caption head: off by default, trained with the tagger when on."""

import json
import tarfile

import pytest
import torch

from model_helpers import CAPTIONS, one_torch_thread  # noqa: F401
from tagmill.engine.synth.world import SynthConfig, synthesize
from tagmill.model.caption import train_tokenizer
from tagmill.model.checkpoint import CheckpointError, load_tagger
from tagmill.model.config import model_config
from tagmill.model.predict import tag_image_files
from tagmill.model.tagger import Tagger
from tagmill.model.train import load_train_config, train
from tagmill.pipeline.job import run


def captioning(name="tiny"):
    config = model_config(name)
    config.caption.enabled = True
    config.caption.max_tokens = 12
    return config


def test_the_caption_head_is_off_by_default():
    assert model_config("tiny").caption.enabled is False
    assert Tagger(model_config("tiny"), 4).caption is None


def test_a_caption_head_needs_its_tokenizer():
    with pytest.raises(ValueError, match="caption tokenizer"):
        Tagger(captioning(), 4)


def test_the_decoder_learns_captions_conditioned_on_tags():
    torch.manual_seed(0)
    tokenizer = train_tokenizer(CAPTIONS, 100)
    model = Tagger(captioning(), 3, caption_tokenizer=tokenizer)
    images = torch.randn(3, 3, 64, 64)
    tags = torch.eye(3, dtype=torch.bool)  # each image its own tag
    ids = model.caption.encode(tokenizer, CAPTIONS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(60):
        _, tokens = model.encode(images)
        loss = model.caption.loss(*model.caption_context(tokens, tags), ids)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.1
    model.eval()
    _, tokens = model.encode(images)
    assert model.caption.generate(tokenizer, *model.caption_context(tokens, tags)) == CAPTIONS


def test_training_with_a_caption_head_and_tagging_with_its_caption(tmp_path):
    world = tmp_path / "world"
    synthesize(world, SynthConfig(n=120, seed=5, shard_size=60))
    run(["--input", str(world), "--output", str(tmp_path / "run")])
    architecture = tmp_path / "captioning.json"
    spec = model_config("tiny").to_dict()
    spec["caption"] = {"enabled": True, "max_tokens": 24}
    architecture.write_text(json.dumps(spec))
    config = load_train_config(None, [f"model={architecture}", "epochs=1", "workers=0", "batch_size=32"])
    train(tmp_path / "run", tmp_path / "model", config)
    model, _ = load_tagger(tmp_path / "model")
    assert model.caption is not None and model.caption_tokenizer.get_vocab_size() > 10
    image = next((tmp_path / "run" / "shards").glob("*.tar"))
    with tarfile.open(image) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".jpg"))
        (tmp_path / "x.jpg").write_bytes(tar.extractfile(member).read())
    tagged = tag_image_files(str(tmp_path / "model"), [str(tmp_path / "x.jpg")])
    [(tags, caption)] = zip(tagged.tags, tagged.captions)
    assert isinstance(caption, str)
    meta = json.loads((tmp_path / "model" / "tagger.json").read_text())
    del meta["caption_tokenizer"]
    (tmp_path / "model" / "tagger.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="caption tokenizer"):
        load_tagger(tmp_path / "model")
