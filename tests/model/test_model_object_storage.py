"""Training, resuming, evaluating, tagging, CLIP folders and imports with shards and models on S3 (moto's
server on loopback): the same bytes as with local folders."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
import torch

from model_helpers import COLOURS, jpeg_bytes, one_torch_thread, run_colour, write_run  # noqa: F401
from ram_helpers import official_state, tiny_model, write_checkpoint, write_tags
from tagmill.engine import storage
from tagmill.model import train as train_module
from tagmill.model.checkpoint import load_model, load_tagger, read_meta
from tagmill.model.clip import create_clip, load_clip
from tagmill.model.config import model_config
from tagmill.model.clip_train import load_clip_train_config, train_clip
from tagmill.model.predict import tag_image_files
from tagmill.model.ram.importer import CAPTION_BRANCH_FILE, import_checkpoint
from tagmill.model.train import STATE_DIR, load_train_config, train
from tagmill.pipeline.cli import main

CONFIGS = Path(__file__).parents[2] / "configs"
SETTINGS = {"workers": 1, "batch_size": 16, "checkpoint_every": 2, "holdout": 0.25, "min_support": 3,
            "warmup_steps": 2}
SHARD_SIZES = [24, 24, 16]
MODEL_FILES = sorted(["model.safetensors", "tagger.json", "metrics.jsonl", "train.json"]
                     + [f"{STATE_DIR}/{name}" for name in ["model.safetensors", "tagger.json", "optimizer.safetensors",
                                                           "state.json"]])


def _config(epochs: int = 1, **more):
    settings = {"epochs": epochs, **SETTINGS, **more}
    return load_train_config(None, [f"{key}={json.dumps(value)}" for key, value in settings.items()])


def _settings(epochs: int = 1) -> list[str]:
    return [arg for key, value in {"epochs": epochs, **SETTINGS}.items() for arg in ("--set", f"{key}={value}")]


def _s3() -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", use_listings_cache=False)


def _upload(folder: Path, url: str) -> str:
    for path in folder.rglob("*"):
        if path.is_file():
            storage.write_bytes(storage.join(url, *path.relative_to(folder).parts), path.read_bytes())
    return url


def _local_files(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def _s3_files(url: str) -> dict[str, bytes]:
    prefix = url.removeprefix("s3://").rstrip("/") + "/"
    return {found[len(prefix):]: storage.read_bytes("s3://" + found) for found in _s3().find(url)}


def _copy(source: str, target: str) -> None:
    for name, data in _s3_files(source).items():
        storage.write_bytes(storage.join(target, name), data)


def _assert_same_weights(model: torch.nn.Module, expected: torch.nn.Module) -> None:
    state, expected_state = model.state_dict(), expected.state_dict()
    assert list(state) == list(expected_state)
    for name, value in state.items():
        assert torch.equal(value, expected_state[name]), name


def _lines(url: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_text(url).splitlines()]


@pytest.fixture(scope="module")
def bucket(s3_server) -> str:
    """One bucket for the module's shared shards and models (`s3_bucket` is one per test)."""
    name = f"tagmill-{uuid.uuid4().hex[:12]}"
    _s3().mkdir(name)
    return f"s3://{name}"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """Shards with captions, and a truth.jsonl beside them."""
    folder = write_run(tmp_path_factory.mktemp("run"), SHARD_SIZES, captions=True)
    keys = [f"{shard:02d}{index:04d}" for shard, size in enumerate(SHARD_SIZES) for index in range(size)]
    (folder / "truth.jsonl").write_text("".join(json.dumps({"key": key, "tags": [run_colour(key)]}) + "\n"
                                                for key in keys))
    return folder


@pytest.fixture(scope="module")
def run_url(run, bucket) -> str:
    return _upload(run, f"{bucket}/run")


@pytest.fixture(scope="module")
def local_model(run, tmp_path_factory) -> Path:
    model_dir = tmp_path_factory.mktemp("model")
    train(run, model_dir, _config())
    return model_dir


@pytest.fixture(scope="module")
def s3_model(run_url, bucket) -> str:
    """`tagmill train` from the shards on S3 into a folder on S3."""
    model_url = f"{bucket}/model"
    assert main(["train", "--shards", run_url, "--out", model_url, *_settings()]) == 0
    return model_url


def test_training_from_and_into_s3_writes_what_training_on_local_folders_writes(local_model, s3_model):
    local, remote = _local_files(local_model), _s3_files(s3_model)
    assert sorted(remote) == sorted(local) == MODEL_FILES
    assert remote == local  # the same weights, thresholds, metrics and training state, byte for byte


def test_a_model_on_s3_loads_as_the_local_one(local_model, s3_model):
    assert read_meta(s3_model) == read_meta(local_model)
    remote, tags = load_tagger(s3_model)
    local, local_tags = load_model(local_model)
    assert tags == local_tags == ["red", "green", "blue"]
    _assert_same_weights(remote, local)


def _eval(model: str, shards: str, capsys) -> dict:
    assert main(["eval", "--model", model, "--shards", shards, "--truth", storage.join(shards, "truth.jsonl")]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_reads_the_model_shards_and_truth_from_s3(run, run_url, local_model, s3_model, capsys):
    remote = _eval(s3_model, run_url, capsys)
    assert remote == _eval(str(local_model), str(run), capsys)
    assert remote["samples"] == sum(SHARD_SIZES)


def test_tag_reads_the_model_and_images_from_s3(local_model, s3_model, s3_bucket, tmp_path, capsys):
    local_image = tmp_path / "red.jpg"
    local_image.write_bytes(jpeg_bytes((32, 32), COLOURS["red"]))
    remote_image = storage.join(s3_bucket, "images", "red.jpg")
    storage.write_bytes(remote_image, local_image.read_bytes())
    tagged = tag_image_files(s3_model, [remote_image])
    assert (tagged.logits == tag_image_files(str(local_model), [str(local_image)]).logits).all()
    assert main(["tag", "--model", s3_model, remote_image]) == 0
    assert capsys.readouterr().out.startswith(f"{remote_image}: ")


def test_tag_writes_its_logits_to_s3(s3_model, s3_bucket, tmp_path):
    image = tmp_path / "red.jpg"
    image.write_bytes(jpeg_bytes((32, 32), COLOURS["red"]))
    logits_url = storage.join(s3_bucket, "logits", "red.npy")
    assert main(["tag", "--model", s3_model, "--logits", logits_url, str(image)]) == 0
    with storage.open_file(logits_url) as stream:
        assert (np.load(stream) == tag_image_files(s3_model, [str(image)]).logits).all()


def test_a_clip_named_by_architecture_and_weights_on_s3_loads_the_local_weights(s3_bucket, tmp_path):
    model, _, _ = create_clip("tiny-clip")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "weights.pt")
    weights_url = storage.join(s3_bucket, "clip", "weights.pt")
    storage.write_bytes(weights_url, (tmp_path / "weights.pt").read_bytes())
    _assert_same_weights(load_clip(f"tiny-clip:{weights_url}")[0], model)


def test_a_training_config_and_a_model_config_on_s3_train_as_local_ones(s3_bucket):
    model_json = storage.join(s3_bucket, "configs", "narrow.json")
    storage.write_text(model_json, (CONFIGS / "models" / "tiny.json").read_text().replace('"dim": 128', '"dim": 64'))
    train_yaml = storage.join(s3_bucket, "configs", "train.yaml")
    storage.write_text(train_yaml, f"model: {model_json}\nepochs: 2\nlr: 0.001\n")
    config = load_train_config(train_yaml)
    assert (config.model, config.epochs, config.lr) == (model_json, 2, 0.001)
    assert model_config(config.model).head.dim == 64


def test_training_on_s3_resumes_for_more_epochs_and_then_is_complete(run_url, s3_model, s3_bucket, caplog):
    model_url = f"{s3_bucket}/model"
    _copy(s3_model, model_url)
    first_line = storage.read_text(f"{model_url}/metrics.jsonl")
    summary = train(run_url, model_url, _config(epochs=2))
    assert "resuming" in caplog.text
    assert storage.read_text(f"{model_url}/metrics.jsonl").startswith(first_line)
    assert [line["epoch"] for line in _lines(f"{model_url}/metrics.jsonl")] == [1, 2]
    state = json.loads(storage.read_text(f"{model_url}/{STATE_DIR}/state.json"))
    assert state["epoch"] == 2 and state["step"] == summary["steps"]
    weights = storage.read_bytes(f"{model_url}/model.safetensors")

    again = train(run_url, model_url, _config(epochs=2))
    assert again["steps"] == summary["steps"]
    assert [line["epoch"] for line in _lines(f"{model_url}/metrics.jsonl")] == [1, 2]
    assert storage.read_bytes(f"{model_url}/model.safetensors") == weights


def test_an_interrupted_training_on_s3_resumes_mid_epoch(run_url, s3_bucket, monkeypatch):
    class Crash(Exception):
        pass

    real_step = train_module._Run._step

    def crash_at_batch_two(self, batch, index):
        if index == 2:
            raise Crash
        return real_step(self, batch, index)

    model_url = f"{s3_bucket}/model"
    monkeypatch.setattr(train_module._Run, "_step", crash_at_batch_two)
    with pytest.raises(Crash):
        train(run_url, model_url, _config())
    state = json.loads(storage.read_text(f"{model_url}/{STATE_DIR}/state.json"))
    assert (state["epoch"], state["step"], state["batches_done"]) == (0, 2, 2)  # checkpoint_every=2
    assert not storage.exists(f"{model_url}/metrics.jsonl")
    monkeypatch.undo()

    summary = train(run_url, model_url, _config())
    assert summary["steps"] == math.ceil(summary["train_samples"] / SETTINGS["batch_size"])  # no batch twice
    assert [line["epoch"] for line in _lines(f"{model_url}/metrics.jsonl")] == [1]


@pytest.mark.slow
def test_two_processes_train_from_and_into_s3(run_url, s3_bucket):
    model_url = f"{s3_bucket}/model"
    summary = train(run_url, model_url, _config(nproc=2, workers=0))
    assert summary["config"]["nproc"] == 2
    assert sorted(_s3_files(model_url)) == MODEL_FILES
    assert load_tagger(model_url)[1] == ["red", "green", "blue"]
    assert [line["epoch"] for line in _lines(f"{model_url}/metrics.jsonl")] == [1]


def test_a_clip_trained_from_and_into_s3_is_the_local_one_and_loads(run, run_url, s3_bucket, tmp_path):
    config = load_clip_train_config(None, ["epochs=1", "workers=0", "batch_size=32"])
    clip_url = f"{s3_bucket}/clip"
    train_clip(run_url, clip_url, config)
    train_clip(run, tmp_path / "clip", config)
    assert _s3_files(clip_url) == _local_files(tmp_path / "clip")
    _assert_same_weights(load_clip(clip_url)[0], load_clip(str(tmp_path / "clip"))[0])


def test_an_official_checkpoint_on_s3_imports_into_a_folder_on_s3_as_into_a_local_one(s3_bucket, tmp_path):
    write_checkpoint(tmp_path / "tag2text.pth", official_state(tiny_model("tag2text")))
    write_tags(tmp_path / "tags.txt", 7)
    _upload(tmp_path, f"{s3_bucket}/official")
    import_checkpoint(f"{s3_bucket}/official/tag2text.pth", "tag2text", f"{s3_bucket}/model",
                      f"{s3_bucket}/official/tags.txt")
    import_checkpoint(tmp_path / "tag2text.pth", "tag2text", tmp_path / "model", tmp_path / "tags.txt")
    assert CAPTION_BRANCH_FILE in _s3_files(f"{s3_bucket}/model")
    assert _s3_files(f"{s3_bucket}/model") == _local_files(tmp_path / "model")
    _assert_same_weights(load_model(f"{s3_bucket}/model")[0], load_model(tmp_path / "model")[0])
