"""Architectures of the RAM, RAM++ and Tag2Text families: typed dataclasses built from JSON mappings.

Every size comes from here, never from a file read inside a constructor, so the full-size
official models (`configs/models/ram-swin-l-384.json`, ...) and scaled-down members for tests
are built by the same code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tagmill.engine.config import ConfigError, build_dataclass

FAMILIES = ("ram", "ram_plus", "tag2text")
FAMILY_NAMES = {"ram": "RAM", "ram_plus": "RAM++", "tag2text": "Tag2Text"}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class SwinConfig:
    patch_size: int = 4  # pixels per side of a patch token
    embed_dim: int = 128  # width of the first stage; each later stage doubles it
    depths: list[int] = field(default_factory=lambda: [2, 2, 18, 2])  # blocks per stage
    heads: list[int] = field(default_factory=lambda: [4, 8, 16, 32])  # attention heads per stage
    window: int = 12  # attention window side in tokens (a stage whose grid is smaller uses its grid)
    mlp_ratio: float = 4.0  # hidden width of each block's MLP, in multiples of the block's width
    drop_path_rate: float = 0.1  # stochastic depth for fine-tuning; inactive at inference

    @property
    def width(self) -> int:
        """Width of the final tokens."""
        return self.embed_dim * 2 ** (len(self.depths) - 1)


@dataclass
class TaggingHeadConfig:
    hidden: int = 768  # width of the tag queries
    layers: int = 2  # post-norm BERT layers with cross-attention only (no self-attention between tags)
    heads: int = 4  # attention heads; shapes cannot tell them, every official checkpoint has 4
    intermediate: int = 3072  # hidden width of each layer's feed-forward block
    layer_norm_eps: float = 1e-12  # BERT's


@dataclass
class CaptionBranchConfig:
    """Sizes of the official files' captioning branch (`tag_encoder`, `text_decoder`, BERT-style)."""

    layers: int = 0  # layers of the tag encoder and of the text decoder; 0: the file has no branch
    hidden: int = 768  # width of both
    intermediate: int = 3072  # feed-forward width of both
    vocab: int = 30524  # BERT's word pieces plus [DEC] and [ENC]
    positions: int = 512  # position embeddings
    encoder_context: int = 512  # width of the image tokens the tag encoder attends to
    decoder_context: int = 768  # width of the tag encoder states the text decoder attends to


@dataclass
class RamConfig:
    name: str = "ram-swin-l-384"
    family: str = "ram"  # ram, ram_plus or tag2text
    image_size: int = 384  # side of the square input, resized without crop
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    swin: SwinConfig = field(default_factory=SwinConfig)
    head: TaggingHeadConfig = field(default_factory=TaggingHeadConfig)
    embed_dim: int = 512  # RAM and RAM++: width of the image projection and of the tag embeddings
    descriptions_per_tag: int = 1  # RAM++: description embeddings per tag (51 in the official model)
    caption_branch: CaptionBranchConfig = field(default_factory=CaptionBranchConfig)
    default_threshold: float = 0.68  # the official inference's threshold where no per-tag one is given

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def projects_image(self) -> bool:
        """RAM and RAM++ project the image tokens to the tag embeddings' width; Tag2Text does not."""
        return self.family in ("ram", "ram_plus")

    @property
    def context_width(self) -> int:
        """Width of the image tokens the tagging head attends to."""
        return self.embed_dim if self.projects_image else self.swin.width


def ram_config(data: dict) -> RamConfig:
    """A family architecture from its JSON mapping, checked."""
    return _checked(build_dataclass(RamConfig, data, "model"))


def _checked(config: RamConfig) -> RamConfig:
    if config.family not in FAMILIES:
        raise ConfigError(f"model.family must be 'tagger' or one of {FAMILIES}, not {config.family!r}")
    swin, head = config.swin, config.head
    if len(swin.depths) != len(swin.heads) or not swin.depths:
        raise ConfigError("model.swin.depths and model.swin.heads need one entry per stage")
    if head.hidden % head.heads:
        raise ConfigError(f"model.head.hidden ({head.hidden}) must be divisible by head.heads ({head.heads})")
    grid = config.image_size // swin.patch_size
    if config.image_size % swin.patch_size or grid % 2 ** (len(swin.depths) - 1):
        raise ConfigError(f"model.image_size {config.image_size} does not divide into "
                          f"{len(swin.depths)} Swin stages of patches of {swin.patch_size}")
    if config.descriptions_per_tag < 1 or (config.family != "ram_plus" and config.descriptions_per_tag != 1):
        raise ConfigError("model.descriptions_per_tag is RAM++'s; the other families have 1")
    if len(config.mean) != 3 or len(config.std) != 3:
        raise ConfigError("model.mean and model.std need three values (RGB)")
    return config
