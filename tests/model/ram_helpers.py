"""Scaled-down RAM, RAM++ and Tag2Text models, official-layout checkpoints written from them, and the
reference data of `../shared/data/ram` when it is there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tagmill.model.factory import build_model
from tagmill.model.ram.config import ram_config
from tagmill.model.ram.families import RamTagger
from tagmill.model.ram.keys import caption_branch_shapes, model_keys, official_name, recomputed_buffer_shapes

RAM_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ram"
FIXTURES = RAM_DATA / "fixtures"
COCO_IMAGES = RAM_DATA.parent / "coco" / "images"
FAMILIES = ("ram", "ram_plus", "tag2text")


def tiny_config(family: str, image_size: int = 64, window: int = 4):
    """A member of the family small enough for any test: 64 px, a 16-wide Swin, a 32-wide head."""
    branch = {"layers": 0} if family == "ram_plus" else {
        "layers": 1, "hidden": 32, "intermediate": 64, "vocab": 50, "positions": 16,
        "encoder_context": 32 if family == "tag2text" else 24, "decoder_context": 32}
    return ram_config({"name": f"tiny-{family}", "family": family, "image_size": image_size,
                       "swin": {"embed_dim": 8, "depths": [2, 2, 2], "heads": [1, 2, 4], "window": window},
                       "head": {"hidden": 32, "layers": 2, "heads": 4, "intermediate": 64}, "embed_dim": 24,
                       "descriptions_per_tag": 3 if family == "ram_plus" else 1, "caption_branch": branch})


def tiny_model(family: str, num_tags: int = 7, seed: int = 0) -> RamTagger:
    """A tiny model with random weights everywhere (the official inits leave some at zero)."""
    torch.manual_seed(seed)
    model = build_model(tiny_config(family), num_tags).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    return model


def official_state(model: RamTagger, seed: int = 1) -> dict[str, torch.Tensor]:
    """The model's weights under the official names, with the Swin buffers and a random captioning
    branch, as an official file holds them."""
    state = model.state_dict()
    official = {key: state[name].clone() for name, key in model_keys(model).items()}
    buffers = dict(model.named_buffers())
    for name in buffers:
        if name.endswith((".relative_position_index", ".attn_mask")):
            official[official_name(name)] = buffers[name].clone()
    assert set(recomputed_buffer_shapes(model)) <= set(official)
    generator = torch.Generator().manual_seed(seed)
    for key, shape in caption_branch_shapes(model.config.caption_branch).items():
        official[key] = torch.randn(shape, generator=generator)
    return official


def write_checkpoint(path: Path, state: dict[str, torch.Tensor]) -> Path:
    torch.save({"model": state}, path)
    return path


def write_tags(path: Path, count: int, prefix: str = "tag") -> Path:
    path.write_text("".join(f"{prefix} {index}\n" for index in range(count)), encoding="utf-8")
    return path


def fixture_spec() -> dict:
    if not (FIXTURES / "fixture.json").is_file():
        pytest.skip(f"the reference fixtures are not at {FIXTURES} (reference data, not shipped with the repo)")
    return json.loads((FIXTURES / "fixture.json").read_text())


def first_lines(name: str, count: int, out: Path) -> Path:
    """The first `count` lines of a reference file, where a fixture uses only that many tags."""
    lines = (RAM_DATA / name).read_text(encoding="utf-8").splitlines()[:count]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
