"""The tagger: shapes and gradients per registered architecture, open-set extension, config errors."""

from __future__ import annotations

import json

import pytest
import torch

from model_helpers import CAPTIONS, TEXT_DIM, build_tagger, images, one_torch_thread  # noqa: F401
from tagmill.engine.config import ConfigError
from tagmill.model.config import MODEL_CONFIGS, available_models, model_config
from tagmill.model.tagger import Tagger

SMALL_MODELS = [name for name in available_models() if model_config(name).image_size <= 64]


def _has_gradient(module: torch.nn.Module) -> bool:
    return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_the_small_architectures_are_registered():
    assert {"tiny", "tiny-open"} <= set(SMALL_MODELS)
    assert "vit-b16-384" in available_models()


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_forward_gives_one_logit_per_tag_and_gradients_reach_every_part(name):
    model = build_tagger(name, num_tags=6).train()
    logits = model(images(model, batch=3))
    assert logits.shape == (3, 6)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    first_encoder_weight = next(model.encoder.parameters())
    assert first_encoder_weight.grad is not None and first_encoder_weight.grad.abs().sum() > 0
    for part in (model.encoder, model.project_tokens, model.queries, model.layers, model.norm, model.classifier):
        assert _has_gradient(part), type(part).__name__
    assert model.bias.grad is not None and model.bias.grad.abs().sum() > 0
    if model.caption is not None:
        _, tokens = model.encode(images(model, batch=3))
        ids = model.caption.encode(model.caption_tokenizer, CAPTIONS)
        model.caption.loss(*model.caption_context(tokens, torch.ones(3, 6, dtype=torch.bool)), ids).backward()
        assert _has_gradient(model.caption)


def test_open_set_queries_are_projections_of_the_text_embeddings():
    model = build_tagger("tiny-open", num_tags=4)
    assert model.queries.open_set and model.classifier.open_set
    assert model.queries.text_embeddings.shape == (4, TEXT_DIM)
    assert "queries.text_embeddings" not in dict(model.named_parameters())  # a buffer, never trained
    learned = build_tagger("tiny", num_tags=4)
    assert not learned.queries.open_set
    assert learned.queries.learned.shape == (4, learned.config.head.dim)


@pytest.mark.slow
def test_vit_b16_384_forward():
    config = model_config("vit-b16-384")
    torch.manual_seed(0)
    model = Tagger(config, 3, torch.randn(3, 512)).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, config.image_size, config.image_size))
    assert logits.shape == (1, 3)
    assert torch.isfinite(logits).all()


def test_thresholds_start_at_the_default():
    model = build_tagger("tiny", num_tags=5)
    assert model.num_tags == 5
    assert model.thresholds.tolist() == [model.config.default_threshold] * 5


# ---- add_tags ------------------------------------------------------------------------------

def test_add_tags_to_an_open_set_model_keeps_the_old_logits_and_scores_the_new_tag():
    model = build_tagger("tiny-open", num_tags=6).eval()
    model.thresholds.copy_(torch.linspace(0.2, 0.7, 6))
    x = images(model)
    with torch.no_grad():
        before = model(x)
    same_as_tag_two = model.queries.text_embeddings[2:3].clone()
    model.add_tags(2, torch.cat([same_as_tag_two, torch.randn(1, TEXT_DIM)]))
    with torch.no_grad():
        after = model(x)
    assert after.shape == (2, 8)
    torch.testing.assert_close(after[:, :6], before, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(after[:, 6:]).all()
    # a new tag with the same text embedding as an old one is scored exactly like it
    torch.testing.assert_close(after[:, 6], before[:, 2], rtol=1e-5, atol=1e-5)
    assert model.num_tags == 8
    torch.testing.assert_close(model.thresholds[:6], torch.linspace(0.2, 0.7, 6))
    assert model.thresholds[6:].tolist() == [model.config.default_threshold] * 2


def test_add_tags_to_a_learned_query_model():
    model = build_tagger("tiny", num_tags=4).eval()
    x = images(model)
    with torch.no_grad():
        before = model(x)
    model.add_tags(3)
    with torch.no_grad():
        after = model(x)
    assert after.shape == (2, 7)
    torch.testing.assert_close(after[:, :4], before, rtol=1e-5, atol=1e-5)
    assert model.queries.learned.shape[0] == 7 and model.classifier.learned.shape[0] == 7
    assert model.bias.shape == (7,)
    assert model.thresholds.tolist()[4:] == [model.config.default_threshold] * 3
    model.train()
    model(x).sum().backward()
    assert model.queries.learned.grad[4:].abs().sum() > 0  # the new queries train


@pytest.mark.parametrize("embeddings", [None, torch.randn(2, TEXT_DIM)], ids=["none", "wrong-count"])
def test_add_tags_to_an_open_set_model_needs_one_embedding_per_tag(embeddings):
    model = build_tagger("tiny-open", num_tags=4)
    with pytest.raises(ValueError, match="one text embedding per new tag"):
        model.add_tags(3, embeddings)
    assert model.num_tags == 4
    assert model.queries.text_embeddings.shape[0] == 4 and model.classifier.text_embeddings.shape[0] == 4


# ---- construction errors ---------------------------------------------------------------------

def test_text_model_without_embeddings_is_refused():
    with pytest.raises(ValueError, match="'tiny-open' has text queries: give text embeddings"):
        Tagger(model_config("tiny-open"), 3)


def test_learned_model_with_embeddings_is_refused():
    with pytest.raises(ValueError, match="'tiny' has learned queries: no text embeddings"):
        Tagger(model_config("tiny"), 3, torch.randn(3, TEXT_DIM))


def test_unknown_model_lists_the_registered_ones():
    with pytest.raises(ConfigError, match="unknown model 'no-such-model'") as err:
        model_config("no-such-model")
    for name in available_models():
        assert name in str(err.value)


def test_model_config_by_name_path_or_mapping_agree(tmp_path):
    by_name = model_config("tiny")
    assert model_config(MODEL_CONFIGS / "tiny.json") == by_name
    assert model_config(json.loads((MODEL_CONFIGS / "tiny.json").read_text())) == by_name
    copy = tmp_path / "mine.json"
    copy.write_text((MODEL_CONFIGS / "tiny.json").read_text())
    assert model_config(str(copy)) == by_name


@pytest.mark.parametrize("head, message", [
    ({"queries": "words"}, "model.head.queries must be one of"),
    ({"dim": 100, "heads": 3}, "must be divisible by head.heads"),
])
def test_bad_head_settings_are_config_errors(head, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        model_config({"head": head})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "head": head}))
    with pytest.raises(ConfigError, match=message):
        model_config(path)


def test_unknown_and_mistyped_keys_are_config_errors():
    with pytest.raises(ConfigError, match="unknown config key model.head.width"):
        model_config({"head": {"width": 3}})
    with pytest.raises(ConfigError, match="model.image_size must be int"):
        model_config({"image_size": "big"})
    with pytest.raises(ConfigError, match="three values"):
        model_config({"mean": [0.5]})
