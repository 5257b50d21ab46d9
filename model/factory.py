"""The one factory: a model and its image preprocessing from an architecture, whatever its family.

tagmill's own tagger and the official RAM, RAM++ and Tag2Text families are built here, so loading
a model folder, training and inference never branch on the family themselves.
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from torch import nn

from tagmill.model.config import ModelConfig
from tagmill.model.ram.config import RamConfig


def build_model(config: ModelConfig | RamConfig, num_tags: int, text_embeddings: torch.Tensor | None = None,
                caption_tokenizer=None) -> nn.Module:
    """A fresh model of `num_tags` tags; text embeddings and a caption tokenizer are the tagger's options."""
    if isinstance(config, RamConfig):
        from tagmill.model.ram.families import build_family_model

        return build_family_model(config, num_tags)
    from tagmill.model.tagger import Tagger

    return Tagger(config, num_tags, text_embeddings, caption_tokenizer)


def sample_decoder(config: ModelConfig | RamConfig, tags: list[str], sources: tuple[str, ...] = (),
                   augment: bool = False):
    """A decoder of shard samples into (image, multi-hot target over `tags`) with the architecture's
    preprocessing, for training and evaluation."""
    from tagmill.model.data import SampleDecoder

    preprocess = image_transform(config) if isinstance(config, RamConfig) else None
    return SampleDecoder({t: i for i, t in enumerate(tags)}, config.image_size, config.mean, config.std, sources,
                         augment, preprocess)


def image_transform(config: ModelConfig | RamConfig) -> Callable[[Image.Image], torch.Tensor]:
    """An upright RGB image to the tensor the architecture takes: the official families resize with
    Pillow as their reference inference does, the tagger as its training does."""
    if isinstance(config, RamConfig):
        from tagmill.model.ram.preprocess import official_transform

        return official_transform(config.image_size, config.mean, config.std)
    from tagmill.model.data import SampleDecoder

    return SampleDecoder({}, config.image_size, config.mean, config.std).transform
