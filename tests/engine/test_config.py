"""Run configs: YAML files and `key=value` overrides into typed dataclasses, every mistake a ConfigError."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tagmill.engine.config import SHIPPED_CONFIGS, ConfigError, RunConfig, config_file, load_config, save_config

DEFAULT_YAML = Path(__file__).resolve().parents[2] / "configs" / "default.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file():
    config = load_config(None)
    assert config == RunConfig()
    assert config.stages == ["parse"]
    assert config.runner.name == "FnApiRunner"
    assert config.parse.vocab is None


def test_repo_default_yaml_equals_the_dataclass_defaults():
    assert load_config(DEFAULT_YAML) == RunConfig()


def test_empty_file_is_the_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing set\n")) == RunConfig()


def test_file_and_overrides(tmp_path):
    path = write(tmp_path, "input:\n  max_caption_chars: 50\nparse:\n  mine:\n    size: 20\n")
    config = load_config(path, [
        "parse.mine.min_count=2",
        "parse.vocab=tags.txt",
        "runner.options=[--flink_master=host:8081, --parallelism=2]",
        "input.max_caption_chars=60",
    ])
    assert config.input.max_caption_chars == 60  # the override wins over the file
    assert config.input.samples_per_shard == 1_000  # untouched keys keep their defaults
    assert config.parse.mine.size == 20
    assert config.parse.mine.min_count == 2
    assert config.parse.vocab == "tags.txt"
    assert config.runner.options == ["--flink_master=host:8081", "--parallelism=2"]


@pytest.mark.parametrize("override", ["parse.vocab=", "parse.vocab=null", "parse.vocab=~"])
def test_override_to_null(tmp_path, override):
    path = write(tmp_path, "parse:\n  vocab: tags.txt\n")
    assert load_config(path, [override]).parse.vocab is None


@pytest.mark.parametrize("override, key", [
    ("input.nope=1", "input.nope"),
    ("bogus=1", "bogus"),
    ("parse.mine.depth=2", "parse.mine.depth"),
])
def test_unknown_key_from_override(override, key):
    with pytest.raises(ConfigError, match=f"unknown config key {key} "):
        load_config(None, [override])


def test_unknown_key_in_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key runner.threads"):
        load_config(write(tmp_path, "runner:\n  threads: 4\n"))


@pytest.mark.parametrize("override, key", [
    ("input.max_caption_chars=abc", "input.max_caption_chars"),
    ("input.max_caption_chars=true", "input.max_caption_chars"),
    ("parse.mine.size=2.5", "parse.mine.size"),
    ("parse.vocab=[a, b]", "parse.vocab"),
    ("runner.options=--one", "runner.options"),
    ("runner.options=[1, 2]", "runner.options"),
    ("stages=parse", "stages"),
    ("input=5", "input"),
    ("input.max_caption_chars.limit=1", "input.max_caption_chars"),
])
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(None, [override])


def test_override_into_a_value_that_is_not_a_section(tmp_path):
    path = write(tmp_path, "input:\n  max_caption_chars: 5\n")
    with pytest.raises(ConfigError, match="max_caption_chars is not a section"):
        load_config(path, ["input.max_caption_chars.limit=1"])


@pytest.mark.parametrize("override", ["novalue", "=5", "  =5"])
def test_override_that_is_not_key_value(override):
    with pytest.raises(ConfigError, match="is not key=value"):
        load_config(None, [override])


@pytest.mark.parametrize("stages", ["[parse, train]", "[]", "[parse, parse]"])
def test_bad_stages(stages):
    with pytest.raises(ConfigError, match="stages"):
        load_config(None, [f"stages={stages}"])


@pytest.mark.parametrize("stage, needs", [("generate", "generate.model"), ("clean", "clean.clip")])
def test_model_stages_need_their_model(stage, needs):
    with pytest.raises(ConfigError, match=needs):
        load_config(None, [f"stages=[parse, {stage}]"])


def test_cleaning_by_the_taggers_support_alone_needs_no_clip():
    config = load_config(None, ["stages=[parse, generate, clean]", "generate.model=m",
                                "clean.rules.similarity.enabled=false", "clean.rules.outliers.enabled=false"])
    assert config.clean.clip is None and not config.clean.rules.uses_clip


def test_the_engine_config_names_every_stage():
    config = load_config(Path(__file__).parents[2] / "configs" / "engine.yaml",
                         ["generate.model=m", "clean.clip=c", "clean.rules.outliers.drop_fraction=0.05"])
    assert config.stages == ["parse", "generate", "clean"]
    assert config.clean.rules.outliers.drop_fraction == 0.05 and config.clean.rules.support.margin == 0.0


@pytest.mark.parametrize("key", [
    "input.max_image_pixels", "input.max_caption_chars", "input.samples_per_shard",
    "parse.mine.size", "parse.mine.min_count", "runner.workers",
])
@pytest.mark.parametrize("value", [0, -3])
def test_values_below_one(key, value):
    with pytest.raises(ConfigError, match=f"{re.escape(key)} must be at least 1, not {value}"):
        load_config(None, [f"{key}={value}"])


@pytest.mark.parametrize("text", ["- parse\n- train\n", "just a string\n", "42\n"])
def test_file_that_is_not_a_mapping(tmp_path, text):
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(write(tmp_path, text))


def test_section_that_is_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="runner must be a mapping"):
        load_config(write(tmp_path, "runner: [a, b]\n"))


def test_invalid_yaml(tmp_path):
    path = write(tmp_path, "input:\n  max_caption_chars: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no config file .*absent.yaml; shipped with tagmill: default.yaml, engine.yaml"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", ["engine.yaml", "engine", "configs/engine.yaml", "rounds/../engine"])
def test_a_shipped_config_is_found_by_its_path_under_configs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_file(name).resolve() == SHIPPED_CONFIGS / "engine.yaml"
    config = load_config(name, ["generate.model=M", "clean.clip=C"])
    assert config.stages == ["parse", "generate", "clean"]


def test_a_file_by_its_path_comes_before_a_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "stages: [parse]\n").rename(tmp_path / "engine.yaml")
    assert config_file("engine.yaml") == Path("engine.yaml")
    assert load_config("engine.yaml").stages == ["parse"]


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes("runner:\n  name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="run.yaml"):
        load_config(path)


def test_fingerprint_follows_outputs_not_the_runner():
    base = load_config(None)
    assert base.output_fingerprint() == load_config(None).output_fingerprint()
    assert load_config(None, ["parse.mine.min_count=2"]).output_fingerprint() != base.output_fingerprint()
    assert load_config(None, ["input.max_caption_chars=10"]).output_fingerprint() != base.output_fingerprint()
    assert load_config(None, ["generate.margin=0.1"]).output_fingerprint() == base.output_fingerprint()  # parse only
    generating = ["stages=[parse, generate]", "generate.model=m"]
    assert load_config(None, generating).output_fingerprint() != \
        load_config(None, [*generating, "generate.margin=0.1"]).output_fingerprint()
    runner_only = load_config(None, ["runner.workers=4", "runner.name=DirectRunner", "runner.options=[--x]"])
    assert runner_only.output_fingerprint() == base.output_fingerprint()


def test_saved_config_loads_back_equal(tmp_path):
    config = load_config(None, [
        "parse.vocab=tags.txt", "parse.mine.size=7", "runner.workers=3", "runner.options=[--a=1, --b]",
    ])
    path = tmp_path / "resolved.yaml"
    save_config(config, path)
    loaded = load_config(path)
    assert loaded == config
    assert loaded.output_fingerprint() == config.output_fingerprint()
