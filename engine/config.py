"""Run configuration: YAML files loaded into typed dataclasses, with `key=value` overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import tagmill.configs
from tagmill.engine import storage
from tagmill.engine.clean import CleanRules
from tagmill.engine.schema import SCHEMA_VERSION

KNOWN_STAGES = ("parse", "generate", "clean")  # in the order they run
SHIPPED_CONFIGS = Path(tagmill.configs.__file__).resolve().parent  # the repository's configs/, a wheel's package data
DEFAULT_RUN_CONFIG = SHIPPED_CONFIGS / "default.yaml"


class ConfigError(ValueError):
    """A config file, key or value that cannot be used."""


@dataclass
class InputConfig:
    max_image_pixels: int = 50_000_000  # larger images are rejected as decompression bombs
    max_caption_chars: int = 2_000  # longer captions are rejected
    samples_per_shard: int = 1_000  # manifests are cut into output shards of this many lines
    repair_text: bool = False  # text that is not valid UTF-8 in captions and metadata becomes U+FFFD, not a reject


@dataclass
class MineConfig:
    size: int = 1_000  # at most this many tags
    min_count: int = 5  # a term must occur at least this often


@dataclass
class ParseConfig:
    vocab: str | None = None  # RAM-format tag list or vocab.json; unset: the input's tags.txt, else mined
    synonyms: str | None = None  # JSON {"tag": ["surface form", ...]}
    spacy_model: str | None = None  # an installed trained spaCy pipeline, used for vocabulary mining
    mine: MineConfig = field(default_factory=MineConfig)


@dataclass
class GenerateConfig:
    model: str | None = None  # a model folder (`tagmill train --out`, `tagmill import-model --out`), on storage
    # every worker reads; the run's tags map onto its tags by name, then by the run's synonyms
    device: str = "auto"  # auto, cpu, cuda (asking for cuda without one falls back to the CPU, with a warning)
    batch_size: int = 64
    cpu_threads: int = 1  # torch threads per worker process on the CPU
    bf16: bool = True  # autocast on CUDA
    margin: float = 0.0  # a tag is generated when the tagger scores it at least this far above the tag's threshold
    captions: bool = False  # the tagger's caption head writes a caption, parsed like the others (Tag2Text)


@dataclass
class CleanConfig:
    clip: str | None = None  # open_clip ARCH[:weights file], or a `tagmill train-clip` folder
    prompts: list[str] = field(default_factory=lambda: ["a photo of a {}."])  # tag-text templates, averaged
    device: str = "auto"
    batch_size: int = 64
    cpu_threads: int = 1
    rules: CleanRules = field(default_factory=CleanRules)


@dataclass
class RunnerConfig:
    name: str = "FnApiRunner"  # Beam runner; FnApiRunner is the embedded default
    workers: int = 1  # FnApiRunner worker processes (multi-process when more than one)
    options: list[str] = field(default_factory=list)  # more Beam pipeline options, passed through
    break_fusion: bool = False  # reshuffle records before the writer, as runners that split a shard's records do


@dataclass
class RunConfig:
    stages: list[str] = field(default_factory=lambda: ["parse"])
    input: InputConfig = field(default_factory=InputConfig)
    parse: ParseConfig = field(default_factory=ParseConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def output_fingerprint(self) -> str:
        """A hash of every setting that changes what is written, and of the output schema: not the
        runner, nor the settings of stages that do not run."""
        skipped = {"runner"} | {stage for stage in ("generate", "clean") if stage not in self.stages}
        settings = {k: v for k, v in self.to_dict().items() if k not in skipped} | {"schema": SCHEMA_VERSION}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """The config file (or the defaults) with `a.b=value` overrides applied, checked."""
    config = load_dataclass(RunConfig, path, overrides)
    validate(config)
    return config


def load_dataclass(cls: type, path: str | Path | None, overrides: list[str] = (), where: str = "") -> Any:
    """A config dataclass from a YAML file (or its defaults) with `a.b=value` overrides."""
    return build_dataclass(cls, apply_overrides(read_mapping(path) if path else {}, overrides), where)


def config_file(path: str | Path) -> Path | str:
    """A config file by its path or URL, or one that ships with tagmill by its path under `configs/`.

    `engine.yaml`, `engine`, `configs/engine.yaml` and `train/tiny` all name a shipped config, so the
    README's commands work from any folder with tagmill installed from a wheel.
    """
    if storage.is_url(path):
        if storage.is_file(path):
            return str(path)
        raise ConfigError(f"no config file {path}")
    given = Path(path)
    if given.is_file():
        return given
    under_configs = Path(*given.parts[1:]) if given.parts[:1] == ("configs",) else given
    for candidate in (under_configs, under_configs.with_name(under_configs.name + ".yaml")):
        if (SHIPPED_CONFIGS / candidate).is_file():
            return SHIPPED_CONFIGS / candidate
    raise ConfigError(f"no config file {path}; shipped with tagmill: {', '.join(shipped_configs())}")


def shipped_configs() -> list[str]:
    """The run, training and rounds configs that ship with tagmill, as paths under `configs/`."""
    return sorted(str(p.relative_to(SHIPPED_CONFIGS)) for p in SHIPPED_CONFIGS.rglob("*.yaml"))


def read_mapping(path: str | Path) -> dict:
    """A YAML (or JSON) config file (see `config_file`) holding a mapping of settings."""
    path = config_file(path)
    try:
        data = yaml.safe_load(storage.read_text(path))
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config {path} is not UTF-8 text") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config {path} is not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of settings")
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`a.b=value` settings (values read as YAML) written into a config mapping."""
    for override in overrides:
        _apply_override(data, override)
    return data


def _apply_override(data: dict, override: str) -> None:
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not key=value")
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {override!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(raw) if raw.strip() else None


def build_dataclass(cls: type, data: object, where: str = "") -> Any:
    """A config dataclass from a mapping, every key known and every value of the declared type."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key {_join(where, unknown[0])} (known: {', '.join(sorted(names))})")
    values = {name: _convert(hints[name], value, _join(where, name)) for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: object, where: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, where)
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        if _matches(option, value):
            return float(value) if option is float else value
    raise ConfigError(f"{where} must be {_describe(hint)}, not {value!r}")


def _matches(option: Any, value: object) -> bool:
    origin = typing.get_origin(option)
    if origin is list:
        (item,) = typing.get_args(option)
        return isinstance(value, list) and all(_matches(item, v) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if option is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if option is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return option is not type(None) and isinstance(value, option)


def _describe(hint: Any) -> str:
    name = hint.__name__ if isinstance(hint, type) else str(hint)
    return name.replace("typing.", "").replace("NoneType", "null")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def validate(config: RunConfig) -> None:
    """Raise ConfigError for settings that cannot run together."""
    unknown = [s for s in config.stages if s not in KNOWN_STAGES]
    if unknown or not config.stages or len(set(config.stages)) != len(config.stages):
        raise ConfigError(f"stages {config.stages} must be a non-empty list of {', '.join(KNOWN_STAGES)}")
    if "generate" in config.stages and not config.generate.model:
        raise ConfigError("the generate stage needs generate.model, a model folder (trained or imported)")
    if "clean" in config.stages and config.clean.rules.uses_clip and not config.clean.clip:
        raise ConfigError("the clean stage's CLIP rules (similarity, outliers) need clean.clip, a CLIP model")
    positive = {"input.max_image_pixels": config.input.max_image_pixels,
                "input.max_caption_chars": config.input.max_caption_chars,
                "input.samples_per_shard": config.input.samples_per_shard,
                "parse.mine.size": config.parse.mine.size, "parse.mine.min_count": config.parse.mine.min_count,
                "runner.workers": config.runner.workers, "generate.batch_size": config.generate.batch_size,
                "clean.batch_size": config.clean.batch_size, "generate.cpu_threads": config.generate.cpu_threads,
                "clean.cpu_threads": config.clean.cpu_threads,
                "clean.rules.sample_per_tag": config.clean.rules.sample_per_tag}
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key} must be at least 1, not {value}")


def save_config(config: RunConfig, path: str | Path) -> None:
    """The fully resolved config, next to the outputs it produced."""
    storage.write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
