"""An official checkpoint's architecture, read from the shapes of its tensors.

Shapes tell the Swin Transformer's widths, depths, heads (from the relative-position tables) and
window, the tagging head's widths and depth, and the captioning branch's sizes. They cannot tell
the tagging head's attention heads (4 in every official checkpoint), which the caller gives.
"""

from __future__ import annotations

import math
import re

import torch

from tagmill.model.config import available_models, model_config
from tagmill.model.ram.config import (
    CaptionBranchConfig,
    RamConfig,
    SwinConfig,
    TaggingHeadConfig,
    ram_config,
)
from tagmill.model.ram.swin import table_window

State = dict[str, torch.Tensor]
OFFICIAL_IMAGE_SIZE = 384  # the official inference's input, where the file's buffers do not say
SWIN = "visual_encoder."
HEAD_LAYER = "tagging_head.encoder.layer."


class ShapeError(ValueError):
    """A checkpoint whose shapes do not describe a model of its family."""


def infer_config(state: State, family: str, num_tags: int, head_heads: int) -> RamConfig:
    """The architecture of an official checkpoint (official key names) scoring `num_tags` tags."""
    swin = infer_swin(state)
    config = RamConfig(name=f"imported-{family}", family=family, image_size=infer_image_size(state, swin),
                       swin=swin, head=infer_head(state, head_heads), caption_branch=infer_caption_branch(state))
    if config.projects_image:
        config.embed_dim = shape(state, "image_proj.weight")[0]
    if family == "ram_plus":
        config.descriptions_per_tag = _descriptions_per_tag(state, num_tags)
    config = ram_config(config.to_dict())
    config.name = shipped_name(config) or config.name
    return config


def infer_swin(state: State) -> SwinConfig:
    width, _, patch, _ = shape(state, f"{SWIN}patch_embed.proj.weight")
    depths = _blocks_per_stage(state)
    heads = [shape(state, _block(stage, 0) + "attn.relative_position_bias_table")[1] for stage in range(len(depths))]
    mlp_ratio = shape(state, _block(0, 0) + "mlp.fc1.weight")[0] / width
    return SwinConfig(patch_size=patch, embed_dim=width, depths=depths, heads=heads, window=_window(state),
                      mlp_ratio=mlp_ratio)


def infer_image_size(state: State, swin: SwinConfig) -> int:
    """From a shifted block's attention mask (one per window of its stage's grid), else from a stage
    whose window was clipped to its grid, else the official 384."""
    for stage, depth in enumerate(swin.depths):
        masks = [state[key] for block in range(depth) if (key := _block(stage, block) + "attn_mask") in state]
        if masks:
            grid = math.isqrt(masks[0].shape[0]) * math.isqrt(masks[0].shape[1])
            return grid * swin.patch_size * 2 ** stage
    windows = [_window(state, stage) for stage in range(len(swin.depths))]
    clipped = [stage for stage, window in enumerate(windows) if window < max(windows)]
    if clipped:
        return windows[clipped[0]] * swin.patch_size * 2 ** clipped[0]
    return OFFICIAL_IMAGE_SIZE


def infer_head(state: State, heads: int) -> TaggingHeadConfig:
    layers = _count(state, re.escape(HEAD_LAYER) + r"(\d+)\.")
    if layers == 0:
        raise ShapeError("the checkpoint has no tagging head (no tagging_head.encoder.layer.* tensors)")
    hidden = shape(state, f"{HEAD_LAYER}0.crossattention.self.query.weight")[0]
    if heads < 1 or hidden % heads:
        raise ShapeError(f"--head-heads {heads} does not divide the tagging head's width {hidden}")
    intermediate = shape(state, f"{HEAD_LAYER}0.intermediate.dense.weight")[0]
    return TaggingHeadConfig(hidden=hidden, layers=layers, heads=heads, intermediate=intermediate)


def infer_caption_branch(state: State) -> CaptionBranchConfig:
    """The captioning branch's sizes; `layers` 0 where the file has none (RAM++)."""
    layers = _count(state, r"tag_encoder\.encoder\.layer\.(\d+)\.")
    if layers == 0:
        return CaptionBranchConfig(layers=0)
    vocab, hidden = shape(state, "tag_encoder.embeddings.word_embeddings.weight")
    decoder_layer = "text_decoder.bert.encoder.layer.0."
    return CaptionBranchConfig(
        layers=layers, hidden=hidden, vocab=vocab,
        intermediate=shape(state, "tag_encoder.encoder.layer.0.intermediate.dense.weight")[0],
        positions=shape(state, "tag_encoder.embeddings.position_embeddings.weight")[0],
        encoder_context=shape(state, "tag_encoder.encoder.layer.0.crossattention.self.key.weight")[1],
        decoder_context=shape(state, decoder_layer + "crossattention.self.key.weight")[1])


def shipped_name(config: RamConfig) -> str | None:
    """The registered architecture this one is, sizes and all, if any."""
    mine = {**config.to_dict(), "name": None}
    for name in available_models():
        shipped = model_config(name)
        if isinstance(shipped, RamConfig) and {**shipped.to_dict(), "name": None} == mine:
            return name
    return None


def shape(state: State, key: str) -> tuple[int, ...]:
    if key not in state:
        raise ShapeError(f"the checkpoint lacks {key}")
    return tuple(state[key].shape)


def _blocks_per_stage(state: State) -> list[int]:
    blocks: dict[int, int] = {}
    for key in state:
        found = re.match(re.escape(SWIN) + r"layers\.(\d+)\.blocks\.(\d+)\.", key)
        if found:
            stage, block = map(int, found.groups())
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
    if not blocks or sorted(blocks) != list(range(len(blocks))):
        raise ShapeError("the checkpoint has no Swin Transformer stages numbered from 0 (visual_encoder.layers.*)")
    return [blocks[stage] for stage in range(len(blocks))]


def _window(state: State, stage: int = 0) -> int:
    """The window a stage of the file's model was built with (its position index), else its bias table's."""
    index = state.get(_block(stage, 0) + "attn.relative_position_index")
    if index is not None:
        return math.isqrt(index.shape[0])
    return table_window(shape(state, _block(stage, 0) + "attn.relative_position_bias_table")[0])


def _descriptions_per_tag(state: State, num_tags: int) -> int:
    rows = shape(state, "label_embed")[0]
    if rows % num_tags:
        raise ShapeError(f"RAM++'s {rows} description embeddings do not divide among {num_tags} tags")
    return rows // num_tags


def _count(state: State, pattern: str) -> int:
    indices = {int(m.group(1)) for key in state if (m := re.match(pattern, key))}
    return max(indices) + 1 if indices else 0


def _block(stage: int, block: int) -> str:
    return f"{SWIN}layers.{stage}.blocks.{block}."
