"""Model architectures: JSON files in `configs/models/`, loaded into typed dataclasses by name or path.

A config's `family` says which model it builds: tagmill's own tagger (`ModelConfig`), or one of the
official RAM, RAM++ and Tag2Text families (`tagmill.model.ram.config.RamConfig`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagmill.engine import storage
from tagmill.engine.config import SHIPPED_CONFIGS, ConfigError, build_dataclass, read_mapping
from tagmill.model.ram.config import RamConfig, ram_config

MODEL_CONFIGS = SHIPPED_CONFIGS / "models"
QUERY_KINDS = ("learned", "text")


@dataclass
class EncoderConfig:
    name: str = "test_resnet"  # a timm architecture
    pretrained_path: str | None = None  # local weights file; nothing is ever downloaded
    kwargs: dict = field(default_factory=dict)  # more timm.create_model arguments (img_size, drop_path_rate, ...)
    feature_stage: int | None = None  # a CNN's stage whose map gives the tokens (finer grid); None: the last


@dataclass
class HeadConfig:
    dim: int = 128  # width of the label queries and the cross-attention
    layers: int = 2  # cross-attention layers (no self-attention between labels, as RAM's head)
    heads: int = 4
    queries: str = "learned"  # "learned" per tag, or "text": projected CLIP text embeddings (open-set)
    dropout: float = 0.1
    encoder_grad_scale: float = 0.1  # share of the head's gradient that reaches the encoder
    pooled_branch: bool = True  # add a per-tag linear score of the pooled image features


@dataclass
class CaptionConfig:
    enabled: bool = False  # Tag2Text's tag-guided caption head (a small transformers decoder)
    layers: int = 2
    heads: int = 4
    max_tokens: int = 32  # caption length, [BOS] and [EOS] included
    vocabulary: int = 2000  # words kept by the tokenizer trained on the training captions
    weight: float = 1.0  # of the caption loss beside the tagging loss


@dataclass
class ModelConfig:
    name: str = "tiny"
    family: str = "tagger"  # tagmill's tagger; the RAM families have their own config (RamConfig)
    image_size: int = 64
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    default_threshold: float = 0.5  # for tags with no calibrated threshold

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def available_models() -> list[str]:
    return sorted(p.stem for p in MODEL_CONFIGS.glob("*.json"))


def model_config(name_or_path: str | Path | dict) -> ModelConfig | RamConfig:
    """A registered architecture by name (`tiny`), a config file path, or a config mapping."""
    data = name_or_path if isinstance(name_or_path, dict) else read_mapping(_config_path(name_or_path))
    if data.get("family", "tagger") != "tagger":
        return ram_config(data)
    return _checked(build_dataclass(ModelConfig, data, "model"))


def _config_path(name_or_path: str | Path) -> Path | str:
    if storage.is_url(name_or_path) and storage.is_file(name_or_path):
        return str(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        path = MODEL_CONFIGS / f"{name_or_path}.json"
    if not path.is_file():
        raise ConfigError(f"unknown model {name_or_path!r}; registered: {', '.join(available_models())}")
    return path


def _checked(config: ModelConfig) -> ModelConfig:
    if config.head.queries not in QUERY_KINDS:
        raise ConfigError(f"model.head.queries must be one of {QUERY_KINDS}, not {config.head.queries!r}")
    if config.head.dim % config.head.heads:
        raise ConfigError(f"model.head.dim ({config.head.dim}) must be divisible by head.heads ({config.head.heads})")
    if len(config.mean) != 3 or len(config.std) != 3:
        raise ConfigError("model.mean and model.std need three values (RGB)")
    return config
