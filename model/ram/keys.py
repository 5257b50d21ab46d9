"""Where each of tagmill's weights sits in an official RAM, RAM++ or Tag2Text checkpoint.

`official_name` maps a tagmill state-dict key to the official one; `official_shapes` lists every
key and shape an official file of a model's architecture holds for it (the buffers tagmill
recomputes included), and `caption_branch_shapes` those of the captioning branch, which tagmill
keeps beside the model rather than in it.
"""

from __future__ import annotations

import re

from torch import nn

from tagmill.model.ram.config import CaptionBranchConfig

TAGMILL_ONLY = frozenset({"thresholds"})  # tagmill's own state, not in the official files
CAPTION_PREFIXES = ("tag_encoder.", "text_decoder.")
RECOMPUTED_SUFFIXES = (".relative_position_index", ".attn_mask")  # Swin buffers derived from the window
OLD_HEAD_PREFIX, HEAD_PREFIX = "vision_multi.", "tagging_head."  # older files name the tagging head vision_multi

_HEAD_LAYER = r"tagging_head.encoder.layer.\1."
_RULES = [(re.compile(pattern), replacement) for pattern, replacement in [
    (r"^encoder\.swin\.", "visual_encoder."),
    (r"^image_proj\.", "image_proj."),
    (r"^labels\.embeddings$", "label_embed"),
    (r"^labels\.queries$", "label_embed.weight"),
    (r"^labels\.project\.", "wordvec_proj."),
    (r"^labels\.scale$", "reweight_scale"),
    (r"^head\.layers\.(\d+)\.attention\.(query|key|value)\.", _HEAD_LAYER + r"crossattention.self.\2."),
    (r"^head\.layers\.(\d+)\.attention\.out\.", _HEAD_LAYER + "crossattention.output.dense."),
    (r"^head\.layers\.(\d+)\.attention\.norm\.", _HEAD_LAYER + "crossattention.output.LayerNorm."),
    (r"^head\.layers\.(\d+)\.feed_forward\.up\.", _HEAD_LAYER + "intermediate.dense."),
    (r"^head\.layers\.(\d+)\.feed_forward\.down\.", _HEAD_LAYER + "output.dense."),
    (r"^head\.layers\.(\d+)\.feed_forward\.norm\.", _HEAD_LAYER + "output.LayerNorm."),
    (r"^classifier\.linear\.", "fc."),
    (r"^classifier\.weight$", "fc.W"),
    (r"^classifier\.bias$", "fc.b"),
]]
_TIMM_DOWNSAMPLE = re.compile(r"^encoder\.swin\.layers\.(\d+)\.downsample\.(.*)$")


def official_name(name: str) -> str:
    """The official key of a tagmill state-dict key (KeyError for tagmill's own state)."""
    downsample = _TIMM_DOWNSAMPLE.match(name)
    if downsample:  # timm merges patches at the start of stage i, the official Swin at the end of stage i - 1
        stage, rest = downsample.groups()
        return f"visual_encoder.layers.{int(stage) - 1}.downsample.{rest}"
    for pattern, replacement in _RULES:
        if pattern.search(name):
            return pattern.sub(replacement, name)
    raise KeyError(f"{name} has no official counterpart")


def model_keys(model: nn.Module) -> dict[str, str]:
    """Official key of each tagmill state-dict key the official files hold."""
    return {name: official_name(name) for name in model.state_dict() if name not in TAGMILL_ONLY}


def official_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Every key and shape an official file holds for this model (captioning branch aside)."""
    state = model.state_dict()
    shapes = {official: tuple(state[name].shape) for name, official in model_keys(model).items()}
    shapes.update(recomputed_buffer_shapes(model))
    return shapes


def recomputed_buffer_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The Swin buffers official files store and timm recomputes (relative_position_index, attn_mask)."""
    persistent = set(model.state_dict())
    return {official_name(name): tuple(buffer.shape) for name, buffer in model.named_buffers()
            if name not in persistent and name.endswith(RECOMPUTED_SUFFIXES)}


def caption_branch_shapes(branch: CaptionBranchConfig) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the captioning branch: a BERT tag encoder cross-attending to the image,
    and a BERT text decoder cross-attending to the tag encoder, with its language-model head."""
    if branch.layers == 0:
        return {}
    shapes = _bert_shapes("tag_encoder.", branch, branch.encoder_context)
    shapes.update(_bert_shapes("text_decoder.bert.", branch, branch.decoder_context))
    hidden, vocab = branch.hidden, branch.vocab
    head = "text_decoder.cls.predictions."
    shapes.update({f"{head}bias": (vocab,), **_linear(f"{head}transform.dense", hidden, hidden),
                   **_norm(f"{head}transform.LayerNorm", hidden), **_linear(f"{head}decoder", hidden, vocab)})
    return shapes


def _bert_shapes(prefix: str, branch: CaptionBranchConfig, context: int) -> dict[str, tuple[int, ...]]:
    hidden = branch.hidden
    shapes = {f"{prefix}embeddings.position_ids": (1, branch.positions),
              f"{prefix}embeddings.word_embeddings.weight": (branch.vocab, hidden),
              f"{prefix}embeddings.position_embeddings.weight": (branch.positions, hidden),
              **_norm(f"{prefix}embeddings.LayerNorm", hidden)}
    for index in range(branch.layers):
        layer = f"{prefix}encoder.layer.{index}."
        for block, width in (("attention", hidden), ("crossattention", context)):
            shapes.update(_linear(f"{layer}{block}.self.query", hidden, hidden))
            shapes.update(_linear(f"{layer}{block}.self.key", width, hidden))
            shapes.update(_linear(f"{layer}{block}.self.value", width, hidden))
            shapes.update(_linear(f"{layer}{block}.output.dense", hidden, hidden))
            shapes.update(_norm(f"{layer}{block}.output.LayerNorm", hidden))
        shapes.update(_linear(f"{layer}intermediate.dense", hidden, branch.intermediate))
        shapes.update(_linear(f"{layer}output.dense", branch.intermediate, hidden))
        shapes.update(_norm(f"{layer}output.LayerNorm", hidden))
    return shapes


def _linear(name: str, inputs: int, outputs: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (outputs, inputs), f"{name}.bias": (outputs,)}


def _norm(name: str, width: int) -> dict[str, tuple[int, ...]]:
    return {f"{name}.weight": (width,), f"{name}.bias": (width,)}
