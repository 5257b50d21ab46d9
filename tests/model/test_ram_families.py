"""The RAM, RAM++ and Tag2Text families on scaled-down members: the registry, the forward pass, the
importer's round trip from the official layout and its errors, the model folder, preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from model_helpers import one_torch_thread  # noqa: F401
from ram_helpers import FAMILIES, official_state, tiny_config, tiny_model, write_checkpoint, write_tags
from tagmill.model.checkpoint import META_FILE, MODEL_FILE, CheckpointError, load_model, load_tagger
from tagmill.model.config import available_models, model_config
from tagmill.model.ram.config import RamConfig
from tagmill.model.ram.importer import CAPTION_BRANCH_FILE, import_checkpoint
from tagmill.model.ram.preprocess import bilinear_resize, preprocess

NUM_TAGS = 7


def _images(config: RamConfig, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, config.image_size, config.image_size, generator=torch.Generator().manual_seed(3))


def _imported(family: str, tmp_path, state=None, **options):
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = tiny_model(family, NUM_TAGS)
    path = write_checkpoint(tmp_path / f"{family}.pth", state if state is not None else official_state(model))
    tags = write_tags(tmp_path / "tags.txt", NUM_TAGS)
    summary = import_checkpoint(path, family, tmp_path / "model", tags, **options)
    return model, summary


def test_the_official_families_are_registered_architectures():
    names = set(available_models())
    assert {"ram-swin-l-384", "ram-swin-b-384", "ram-plus-swin-l-384", "ram-plus-swin-b-384",
            "tag2text-swin-b-384"} <= names
    ram = model_config("ram-swin-l-384")
    assert isinstance(ram, RamConfig) and ram.family == "ram" and ram.swin.width == 1536
    assert model_config("ram-plus-swin-l-384").descriptions_per_tag == 51
    assert model_config("tiny").family == "tagger"


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_scores_every_tag_and_trains_end_to_end(family):
    model = tiny_model(family).train()
    logits = model(_images(model.config))
    assert logits.shape == (2, model.num_tags) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.head.parameters())
    assert model.encoder.swin.patch_embed.proj.weight.grad is not None


@pytest.mark.parametrize("family", FAMILIES)
def test_an_official_layout_checkpoint_imports_to_the_same_logits(family, tmp_path):
    model, summary = _imported(family, tmp_path)
    loaded, tags = load_model(tmp_path / "model")
    assert tags == [f"tag {i}" for i in range(NUM_TAGS)]
    assert summary.config.family == family and summary.config.swin == model.config.swin
    assert summary.config.image_size == model.config.image_size  # from the attention masks' count
    x = _images(model.config)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-5)
    assert loaded.thresholds.tolist() == pytest.approx([0.68] * NUM_TAGS)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_model_folder_is_safetensors_and_json_and_loads_again(family, tmp_path):
    _imported(family, tmp_path)
    folder = tmp_path / "model"
    extra = {CAPTION_BRANCH_FILE} if family == "tag2text" else set()
    assert {p.name for p in folder.iterdir()} == {MODEL_FILE, META_FILE} | extra
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["config"]["family"] == family and len(meta["tags"]) == len(meta["thresholds"]) == NUM_TAGS
    first, _ = load_model(folder)
    second, _ = load_model(folder)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    with pytest.raises(CheckpointError, match="imported .* model"):
        load_tagger(folder)


def test_captioning_branch_is_kept_for_tag2text_and_reported_unused_for_ram(tmp_path):
    _, tag2text = _imported("tag2text", tmp_path / "t")
    _, ram = _imported("ram", tmp_path / "r")
    assert any("kept" in note for note in tag2text.notes)
    assert any("not used" in note for note in ram.notes)
    assert not (tmp_path / "r" / "model" / CAPTION_BRANCH_FILE).exists()


def test_thresholds_come_from_the_thresholds_file(tmp_path):
    values = [0.1 * (i + 1) for i in range(NUM_TAGS)]
    (tmp_path / "thresholds.txt").write_text("".join(f"{v}\n" for v in values))
    _imported("ram", tmp_path, thresholds_file=tmp_path / "thresholds.txt")
    loaded, _ = load_model(tmp_path / "model")
    assert loaded.thresholds.tolist() == pytest.approx(values)


def test_older_files_naming_the_head_vision_multi_import_the_same(tmp_path):
    model = tiny_model("ram", NUM_TAGS)
    state = {key.replace("tagging_head.", "vision_multi."): value for key, value in official_state(model).items()}
    _imported("ram", tmp_path, state=state)
    loaded, _ = load_model(tmp_path / "model")
    x = _images(model.config)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=1e-5)


def test_position_tables_of_another_window_are_interpolated(tmp_path):
    model = tiny_model("ram", NUM_TAGS)
    state = official_state(model)
    for key in [k for k in state if k.endswith("relative_position_bias_table")]:
        state[key] = torch.randn(9, state[key].shape[1])  # a window of 2: (2·2 − 1)² rows
    _, summary = _imported("ram", tmp_path, state=state)
    assert any("interpolated" in note for note in summary.notes)
    loaded, _ = load_model(tmp_path / "model")
    assert loaded.config.swin.window == 4
    assert torch.isfinite(loaded(_images(model.config))).all()


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("image_proj.bias"), "missing image_proj.bias"),
    (lambda s: s.update({"visual_encoder.head.weight": torch.zeros(3, 32)}), "unexpected visual_encoder.head.weight"),
    (lambda s: s.update({"wordvec_proj.bias": torch.zeros(31)}), r"wordvec_proj.bias is \(31,\) in the file, \(32,\)"),
    (lambda s: s.pop("tag_encoder.encoder.layer.0.output.dense.bias"), "missing tag_encoder"),
])
def test_a_key_missing_extra_or_of_another_shape_is_one_clear_error(tmp_path, edit, message):
    state = official_state(tiny_model("ram", NUM_TAGS))
    edit(state)
    with pytest.raises(CheckpointError, match=message) as raised:
        _imported("ram", tmp_path, state=state)
    assert "\n" not in str(raised.value)


def test_another_familys_checkpoint_is_named(tmp_path):
    path = write_checkpoint(tmp_path / "plus.pth", official_state(tiny_model("ram_plus", NUM_TAGS)))
    with pytest.raises(CheckpointError, match=r"is a RAM\+\+ checkpoint \(it has reweight_scale\), not RAM"):
        import_checkpoint(path, "ram", tmp_path / "model", write_tags(tmp_path / "tags.txt", NUM_TAGS))


def test_a_tag_list_of_another_length_is_refused(tmp_path):
    path = write_checkpoint(tmp_path / "ram.pth", official_state(tiny_model("ram", NUM_TAGS)))
    with pytest.raises(CheckpointError, match="names 5 tags; the checkpoint scores 7"):
        import_checkpoint(path, "ram", tmp_path / "model", write_tags(tmp_path / "tags.txt", 5))


def test_scaled_down_members_are_built_from_their_config_alone():
    config = tiny_config("ram_plus")
    model = tiny_model("ram_plus", num_tags=4)
    assert model.labels.embeddings.shape == (4 * config.descriptions_per_tag, config.embed_dim)
    assert model.encoder.dim == config.swin.width


# ---- preprocessing ---------------------------------------------------------------------------

def _noise_image(width: int, height: int) -> Image.Image:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_resize_runs_the_vertical_pass_first_when_the_height_shrinks_much_more():
    portrait = _noise_image(427, 640)  # 256 rows go, 43 columns: vertical first
    vertical_first = portrait.resize((427, 384), Image.BILINEAR).resize((384, 384), Image.BILINEAR)
    assert np.array_equal(np.asarray(bilinear_resize(portrait, 384, 384)), np.asarray(vertical_first))
    landscape = _noise_image(640, 480)
    assert np.array_equal(np.asarray(bilinear_resize(landscape, 384, 384)),
                          np.asarray(landscape.resize((384, 384), Image.BILINEAR)))


def test_preprocessing_normalizes_with_the_given_mean_and_std():
    white = Image.new("RGB", (50, 40), (255, 255, 255))
    tensor = preprocess(white, 32, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    assert tensor.shape == (3, 32, 32)
    torch.testing.assert_close(tensor, torch.full((3, 32, 32), 2.0))
