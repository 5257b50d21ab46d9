"""The training loop end to end on a tiny synthetic world written by the real pipeline."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from model_helpers import jpeg_bytes, one_torch_thread, shard_json, write_tar  # noqa: F401
from tagmill.engine.config import ConfigError
from tagmill.engine.synth.world import SynthConfig, synthesize
from tagmill.model import train as train_module
from tagmill.model.checkpoint import CheckpointError, load_tagger, read_meta, save_tagger
from tagmill.model.config import model_config
from tagmill.model.data import SampleDecoder, ShardError, in_split, make_loader, shard_paths
from tagmill.model.evaluate import calibrate_thresholds, evaluate_checkpoint, predict
from tagmill.model.predict import tag_image_files
from tagmill.model.tagger import Tagger
from tagmill.model.train import STATE_DIR, load_train_config, train
from tagmill.model.vocabulary import count_split
from tagmill.pipeline.job import run

TINY_YAML = Path(__file__).resolve().parents[2] / "configs" / "train" / "tiny.yaml"
BATCH = 16
SETTINGS = {"workers": 0, "batch_size": BATCH, "checkpoint_every": 5, "holdout": 0.25, "min_support": 3}


def _config(epochs: int = 1, **more):
    settings = {"epochs": epochs, **SETTINGS, **more}
    return load_train_config(TINY_YAML, [f"{key}={json.dumps(value)}" for key, value in settings.items()])


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("world")
    synthesize(folder, SynthConfig(n=240, shard_size=80, image_size=32))
    return folder


@pytest.fixture(scope="module")
def shards(world, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    with contextlib.redirect_stdout(io.StringIO()):
        run(["--input", str(world), "--output", str(out)])
    return out


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("model")
    summary = train(shards, model_dir, _config(epochs=1))
    return model_dir, summary


def _steps_per_epoch(summary: dict) -> int:
    return math.ceil(summary["train_samples"] / BATCH)


def test_training_writes_the_checkpoint_metrics_and_summary(world, trained):
    model_dir, summary = trained
    for name in ["model.safetensors", "tagger.json", "metrics.jsonl", "train.json"]:
        assert (model_dir / name).is_file(), name
    meta = read_meta(model_dir)
    world_tags = (world / "tags.txt").read_text().split("\n")
    assert meta["tags"] == [tag for tag in world_tags if tag]
    assert meta["config"]["name"] == "tiny"
    assert len(meta["thresholds"]) == len(meta["tags"])
    metrics = _lines(model_dir / "metrics.jsonl")
    assert [line["epoch"] for line in metrics] == [1]
    assert {"mAP", "micro_f1", "macro_f1", "precision", "recall", "lr", "step"} <= metrics[0].keys()
    written = json.loads((model_dir / "train.json").read_text())
    assert written == json.loads(json.dumps(summary))
    assert written["tags"] == len(meta["tags"]) and written["skipped_samples"] == 0
    assert written["steps"] == _steps_per_epoch(summary) == metrics[0]["step"]
    assert written["config"]["epochs"] == 1 and written["config"]["model"] == "tiny"
    assert 0 < written["train_samples"] < 240
    assert written["holdout"]["samples"] == 240 - written["train_samples"]


def _stored_and_recalibrated(model_dir: Path, shards: Path, method: str) -> tuple[list[float], list[float]]:
    """The checkpoint's thresholds, and those `method` gives on its held-out scores."""
    model, tags = load_tagger(model_dir)
    thresholds = read_meta(model_dir)["thresholds"]
    torch.testing.assert_close(model.thresholds, torch.tensor(thresholds))
    config = model.config
    decoder = SampleDecoder({t: i for i, t in enumerate(tags)}, config.image_size, config.mean, config.std)
    loader = make_loader(shard_paths(shards), decoder, 2 * BATCH, "holdout", SETTINGS["holdout"])
    found = predict(model, loader, torch.device("cpu"))
    expected = calibrate_thresholds(found.scores, found.targets, config.default_threshold, SETTINGS["min_support"],
                                    method=method)
    return thresholds, expected.tolist()


def test_the_final_thresholds_are_calibrated_on_the_holdout(shards, trained):
    thresholds, expected = _stored_and_recalibrated(trained[0], shards, "f1")
    assert thresholds == pytest.approx(expected, abs=1e-5)
    assert any(abs(t - 0.5) > 1e-6 for t in thresholds)  # some tags have their own
    assert all(0.05 <= t <= 0.95 for t in thresholds)


def test_training_can_calibrate_by_the_mixture_of_scores(shards, trained, tmp_path):
    train(shards, tmp_path, _config(epochs=0, init_from=str(trained[0]), thresholds="mixture"))
    thresholds, expected = _stored_and_recalibrated(tmp_path, shards, "mixture")
    assert thresholds == pytest.approx(expected, abs=1e-5)
    assert thresholds != pytest.approx(read_meta(trained[0])["thresholds"], abs=1e-3)


def test_training_without_a_config_file_uses_the_shipped_tiny_one():
    assert load_train_config(None) == load_train_config(TINY_YAML)
    assert load_train_config(None).loss.gamma_neg == 4.0


def test_an_unknown_threshold_method_is_a_config_error():
    with pytest.raises(ConfigError, match="train.thresholds must be one of"):
        load_train_config(TINY_YAML, ["thresholds=otsu"])


def test_training_resumes_for_more_epochs(shards, trained, tmp_path, caplog):
    model_dir = tmp_path / "model"
    shutil.copytree(trained[0], model_dir)
    first_line = (model_dir / "metrics.jsonl").read_text().splitlines()[0]
    summary = train(shards, model_dir, _config(epochs=2))
    assert "resuming" in caplog.text
    lines = (model_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and lines[0] == first_line
    assert json.loads(lines[1])["epoch"] == 2
    state = json.loads((model_dir / STATE_DIR / "state.json").read_text())
    assert state["epoch"] == 2 and state["batches_done"] == 0
    assert state["step"] == summary["steps"] == 2 * _steps_per_epoch(summary)
    assert json.loads((model_dir / "train.json").read_text())["config"]["epochs"] == 2


def test_training_resumes_mid_epoch_without_repeating_batches(shards, tmp_path, monkeypatch):
    class Crash(Exception):
        pass

    real_step = train_module._Run._step

    def crash_at_batch_seven(self, batch, index):
        if index == 7:
            raise Crash
        return real_step(self, batch, index)

    monkeypatch.setattr(train_module._Run, "_step", crash_at_batch_seven)
    with pytest.raises(Crash):
        train(shards, tmp_path, _config(epochs=1))
    state = json.loads((tmp_path / STATE_DIR / "state.json").read_text())
    assert (state["epoch"], state["step"], state["batches_done"]) == (0, 5, 5)  # checkpoint_every=5
    assert not (tmp_path / "metrics.jsonl").exists()
    monkeypatch.undo()

    summary = train(shards, tmp_path, _config(epochs=1))
    assert summary["steps"] == _steps_per_epoch(summary)  # batches 0-4 were not trained on again
    assert [line["epoch"] for line in _lines(tmp_path / "metrics.jsonl")] == [1]


def test_evaluating_the_checkpoint_reproduces_its_holdout_metrics(shards, trained):
    model_dir, summary = trained
    result = evaluate_checkpoint(str(model_dir), str(shards), split="holdout")  # holdout share from the checkpoint
    assert result["samples"] == summary["holdout"]["samples"]
    for name in ["mAP", "micro_f1", "macro_f1", "precision", "recall"]:
        assert result[name] == pytest.approx(summary["holdout"][name], abs=1e-6), name


def test_evaluating_against_the_world_truth(world, shards, trained):
    model_dir, summary = trained
    result = evaluate_checkpoint(str(model_dir), str(shards), truth=str(world / "truth.jsonl"), split="holdout")
    assert result["samples"] == summary["holdout"]["samples"]
    assert 0.0 <= result["mAP"] <= 1.0 and len(result["per_tag"]) == summary["tags"]


def test_evaluating_against_a_broken_truth_file_names_its_line(shards, trained, tmp_path):
    truth = tmp_path / "truth.jsonl"
    truth.write_text('{"key": "000000000", "tags": ["circle"]}\n{"id": "000000001"}\n')
    with pytest.raises(ValueError, match=r"truth.jsonl:2 is not a \{"):
        evaluate_checkpoint(str(trained[0]), str(shards), truth=str(truth))


def test_tagging_image_files_with_the_checkpoint(trained, tmp_path):
    model_dir, _ = trained
    paths = []
    for index, colour in enumerate([(250, 10, 10), (10, 10, 250)]):
        paths.append(tmp_path / f"{index}.jpg")
        paths[-1].write_bytes(jpeg_bytes((48, 40), colour))
    model, tags = load_tagger(model_dir)
    tagged = tag_image_files(str(model_dir), [str(p) for p in paths])
    found = list(zip(tagged.tags, tagged.captions))
    assert len(found) == 2
    for row, caption in found:
        assert caption is None  # no caption head
        scores = [score for _, score in row]
        assert scores == sorted(scores, reverse=True)
        for tag, score in row:
            assert score >= float(model.thresholds[tags.index(tag)])


def _shards_with_a_corrupt_sample(shards: Path, folder: Path) -> tuple[Path, str]:
    out = folder / "run"
    shutil.copytree(shards, out)
    bad_key = next(key for key in (f"corrupt{i}" for i in range(100)) if in_split(key, "train", SETTINGS["holdout"]))
    write_tar(out / "shards" / "00099.tar", {
        f"{bad_key}.jpg": b"\xff\xd8\xff\xe0 this is not a jpeg", f"{bad_key}.json": shard_json(["red"]),
        "fine0.jpg": jpeg_bytes((32, 32)), "fine0.json": shard_json(["red", "circle"]),
    })
    return out, bad_key


def test_a_corrupt_sample_does_not_stop_training(shards, tmp_path):
    out, _ = _shards_with_a_corrupt_sample(shards, tmp_path)
    summary = train(out, tmp_path / "model", _config(epochs=1))
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert summary["train_samples"] > 0


def test_a_corrupt_sample_is_counted_as_skipped(shards, tmp_path):
    out, _ = _shards_with_a_corrupt_sample(shards, tmp_path)
    summary = train(out, tmp_path / "model", _config(epochs=1))
    assert summary["skipped_samples"] == 1


def test_a_text_query_model_needs_a_text_encoder(shards, tmp_path):
    with pytest.raises(ValueError, match="set text_encoder"):
        train(shards, tmp_path, _config(model="tiny-open"))


def test_training_on_no_shards_is_a_shard_error(tmp_path):
    with pytest.raises(ShardError, match="no .tar shards"):
        train(tmp_path / "empty", tmp_path / "model", _config())


def test_the_tiny_training_config_loads():
    config = load_train_config(TINY_YAML)
    assert config.model == "tiny" and config.loss.gamma_neg == 4.0 and config.holdout == 0.05


def test_gradient_accumulation_applies_the_last_partial_group(shards, tmp_path):
    samples = count_split(shard_paths(shards), "train", SETTINGS["holdout"])
    batch_size = next(b for b in range(BATCH, 4 * BATCH) if math.ceil(samples / b) % 2 == 1)
    summary = train(shards, tmp_path, _config(epochs=1, accumulate=2, batch_size=batch_size))
    batches = math.ceil(samples / batch_size)  # odd: the epoch ends with a group of one batch
    assert summary["steps"] == math.ceil(batches / 2)


def test_training_can_start_from_another_taggers_weights(shards, trained, tmp_path):
    start, _ = trained
    train(shards, tmp_path / "again", _config(epochs=0, init_from=str(start)))  # no step: the weights as loaded
    loaded, _ = load_tagger(tmp_path / "again")
    original, _ = load_tagger(start)
    for name, weights in original.state_dict().items():
        if name != "thresholds":  # calibrated again on the held-out split
            assert torch.equal(weights, loaded.state_dict()[name]), name


def test_starting_from_a_tagger_of_other_tags_is_a_clear_error(shards, tmp_path):
    other = Tagger(model_config("tiny"), 2)
    save_tagger(other, tmp_path / "other", ["zebra", "giraffe"])
    with pytest.raises(CheckpointError, match="cannot start"):
        train(shards, tmp_path / "model", _config(epochs=0, init_from=str(tmp_path / "other")))
