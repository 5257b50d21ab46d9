"""Checkpoints: safetensors + JSON round trips, clear errors for folders that do not fit."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from model_helpers import build_tagger, images, one_torch_thread  # noqa: F401
from tagmill.model.checkpoint import (
    META_FILE,
    MODEL_FILE,
    CheckpointError,
    load_tagger,
    load_training_state,
    save_tagger,
    save_training_state,
)

TAGS = ["cat", "dog", "traffic light", "red", "beach", "night sky"]


def _saved(name: str, folder, tags=TAGS):
    model = build_tagger(name, num_tags=len(tags)).eval()
    model.thresholds.copy_(torch.linspace(0.1, 0.9, len(tags)))
    save_tagger(model, folder, tags, {"note": "kept"})
    return model


def _edit_meta(folder, edit) -> None:
    meta = json.loads((folder / META_FILE).read_text())
    edit(meta)
    (folder / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize("name", ["tiny", "tiny-open"])
def test_round_trip_gives_identical_outputs_tags_and_thresholds(name, tmp_path):
    model = _saved(name, tmp_path)
    x = images(model, batch=2)
    with torch.no_grad():
        expected = model(x)
    loaded, tags = load_tagger(tmp_path)
    assert not loaded.training
    assert tags == TAGS
    assert loaded.config == model.config
    torch.testing.assert_close(loaded.thresholds, model.thresholds, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["tiny", "tiny-open"])
def test_files_are_safetensors_and_json_only(name, tmp_path):
    model = _saved(name, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MODEL_FILE, META_FILE])  # no .tmp, no pickle
    meta = json.loads((tmp_path / META_FILE).read_text())
    assert meta["tags"] == TAGS
    assert meta["thresholds"] == pytest.approx(torch.linspace(0.1, 0.9, len(TAGS)).tolist())
    assert meta["config"]["name"] == name and meta["note"] == "kept"
    assert meta["text_dim"] == (32 if name == "tiny-open" else None)
    weights = load_file(str(tmp_path / MODEL_FILE))
    assert weights.keys() == model.state_dict().keys()
    assert (tmp_path / MODEL_FILE).read_bytes()[:2] != b"PK"  # not torch.save's zip


def test_save_refuses_a_tag_list_of_the_wrong_length(tmp_path):
    model = build_tagger("tiny", num_tags=3)
    with pytest.raises(ValueError, match="2 tag names for a model of 3 tags"):
        save_tagger(model, tmp_path, ["a", "b"])


def test_an_extended_model_round_trips(tmp_path):
    model = build_tagger("tiny-open", num_tags=2).eval()
    model.add_tags(1, torch.randn(1, 32))
    save_tagger(model, tmp_path, ["a", "b", "c"])
    loaded, tags = load_tagger(tmp_path)
    x = images(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert tags == ["a", "b", "c"]


@pytest.mark.parametrize("missing", [MODEL_FILE, META_FILE])
def test_a_folder_missing_a_file_is_a_checkpoint_error(missing, tmp_path):
    _saved("tiny", tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(CheckpointError, match="is not a tagger checkpoint"):
        load_tagger(tmp_path)


def test_an_empty_or_absent_folder_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="is not a tagger checkpoint"):
        load_tagger(tmp_path)
    with pytest.raises(CheckpointError, match="is not a tagger checkpoint"):
        load_tagger(tmp_path / "nowhere")


@pytest.mark.parametrize("name, edit", [
    ("tiny", lambda meta: meta["config"]["head"].update(dim=64)),  # same keys, other shapes
    ("tiny", lambda meta: meta["config"]["head"].update(layers=3)),  # a layer the weights lack
    ("tiny", lambda meta: meta["config"]["head"].update(queries="text") or meta.update(text_dim=32)),
    ("tiny-open", lambda meta: meta.update(text_dim=16)),
    ("tiny", lambda meta: meta["tags"].append("extra")),
], ids=["head-dim", "layers", "query-kind", "text-dim", "tag-count"])
def test_a_checkpoint_for_another_architecture_does_not_fit(name, edit, tmp_path):
    _saved(name, tmp_path)
    _edit_meta(tmp_path, edit)
    with pytest.raises(CheckpointError, match="does not fit architecture"):
        load_tagger(tmp_path)


def test_a_newer_format_is_refused(tmp_path):
    _saved("tiny", tmp_path)
    _edit_meta(tmp_path, lambda meta: meta.update(format=99))
    with pytest.raises(CheckpointError, match="newer tagmill"):
        load_tagger(tmp_path)


# ---- training state ------------------------------------------------------------------------

def _optimizer_and_schedule(model):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    return optimizer, scheduler


def _step(model, optimizer, scheduler, x):
    model(x).square().mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()


def test_training_state_round_trip_restores_adamw_and_the_schedule(tmp_path):
    model = build_tagger("tiny", num_tags=4).eval()  # eval: no dropout, so steps are reproducible
    optimizer, scheduler = _optimizer_and_schedule(model)
    x = images(model)
    for _ in range(3):
        _step(model, optimizer, scheduler, x)
    save_training_state(tmp_path, optimizer, scheduler, {"epoch": 2, "step": 3, "batches_done": 7})
    assert json.loads((tmp_path / "state.json").read_text())["epoch"] == 2
    assert load_file(str(tmp_path / "optimizer.safetensors"))

    twin = build_tagger("tiny", num_tags=4).eval()
    twin.load_state_dict(model.state_dict())
    twin_optimizer, twin_scheduler = _optimizer_and_schedule(twin)
    state = load_training_state(tmp_path, twin_optimizer, twin_scheduler)

    assert state == {"epoch": 2, "step": 3, "batches_done": 7}
    assert twin_scheduler.last_epoch == scheduler.last_epoch == 3
    assert twin_scheduler.get_last_lr() == pytest.approx(scheduler.get_last_lr())
    assert twin_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** 3)
    restored, original = twin_optimizer.state_dict()["state"], optimizer.state_dict()["state"]
    assert restored.keys() == original.keys() and len(original) == len(list(model.parameters()))
    for index, slots in original.items():
        for name in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(restored[index][name], slots[name], rtol=0, atol=0)

    # one more step from the restored state lands on the same weights
    _step(model, optimizer, scheduler, x)
    _step(twin, twin_optimizer, twin_scheduler, x)
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)
    assert math.isclose(twin_scheduler.get_last_lr()[0], scheduler.get_last_lr()[0])
