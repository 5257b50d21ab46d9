"""Training on two CPU processes (gloo): shares of the shards, equal batch counts, one writer, resume."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from model_helpers import jpeg_bytes, one_torch_thread, shard_json, write_run, write_tar  # noqa: F401
from tagmill.model.checkpoint import load_tagger, read_meta
from tagmill.model.config import model_config
from tagmill.model.data import (SampleDecoder, Share, ShardError, in_split, make_loader, shard_paths, share_batches,
                                share_shards)
from tagmill.model.distributed import World
from tagmill.model.evaluate import calibrate_thresholds, predict
from tagmill.model.train import STATE_DIR, load_train_config, train
from tagmill.model.vocabulary import count_split, split_counts
from tagmill.pipeline.cli import main

BATCH = 16
SETTINGS = {"workers": 0, "batch_size": BATCH, "checkpoint_every": 2, "holdout": 0.25, "min_support": 3,
            "warmup_steps": 2, "nproc": 2}
SHARD_SIZES = [48, 40, 24, 16, 8]  # uneven, as a run's last shard is
CORRUPT = next(key for key in (f"corrupt{i}" for i in range(100)) if in_split(key, "train", SETTINGS["holdout"]))


def _config(epochs: int = 1, **more):
    settings = {"epochs": epochs, **SETTINGS, **more}
    return load_train_config(None, [f"{key}={json.dumps(value)}" for key, value in settings.items()])


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _decoder() -> SampleDecoder:
    config = model_config("tiny")
    return SampleDecoder({"red": 0, "green": 1, "blue": 2}, config.image_size, config.mean, config.std)


def _train_keys(paths: list[str]) -> list[str]:
    loader = make_loader(paths, _decoder(), BATCH, "train", SETTINGS["holdout"])
    return [key for batch in loader for key in batch.keys]


def _shares(paths: list[str], processes: int) -> list[Share]:
    return share_shards(paths, split_counts(paths, "train", SETTINGS["holdout"]), processes, BATCH)


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Uneven shards, and one more holding a training sample that will not decode."""
    run = write_run(tmp_path_factory.mktemp("run"), SHARD_SIZES)
    write_tar(run / "shards" / "00099.tar", {
        f"{CORRUPT}.jpg": b"\xff\xd8\xff\xe0 this is not a jpeg", f"{CORRUPT}.json": shard_json(["red"]),
        **{f"fine{i}.{ext}": data for i in range(6)
           for ext, data in [("jpg", jpeg_bytes((32, 32), (220, 40, 40))), ("json", shard_json(["red"]))]},
    })
    return run


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("model")
    return model_dir, train(shards, model_dir, _config())


def _steps_per_epoch(shards: Path) -> int:
    return _shares(shard_paths(shards), 2)[0].batches


def test_shards_are_dealt_out_evenly_each_to_one_process():
    paths = [f"{i:05d}.tar" for i in range(6)]
    shares = share_shards(paths, [40, 30, 20, 10, 10, 5], 2, BATCH)
    assert sorted(path for share in shares for path in share.shards) == paths
    assert [share.samples for share in shares] == [60, 55]
    assert [share.batches for share in shares] == [4, 4]  # as many as the largest share needs


def test_a_share_too_small_for_its_batches_is_a_shard_error():
    with pytest.raises(ShardError, match="cannot be shared by 2 processes"):
        share_shards(["a.tar", "b.tar"], [100, 3], 2, BATCH)
    with pytest.raises(ShardError, match="one would get 0 samples"):
        share_shards(["a.tar"], [100], 2, BATCH)


@pytest.mark.parametrize("processes,workers", [(2, 0), (3, 2)])
def test_every_training_sample_is_in_one_batch_of_one_process(shards, processes, workers):
    paths = shard_paths(shards)
    seen, skipped, batch_counts = [], 0, set()
    for rank, share in enumerate(_shares(paths, processes)):
        batches = list(share_batches(share, _decoder(), SETTINGS["holdout"], workers, World(rank, processes).seed(7)))
        batch_counts.add(len(batches))
        assert all(1 <= len(batch.keys) + batch.skipped <= BATCH for batch in batches)
        seen += [key for batch in batches for key in batch.keys]
        skipped += sum(batch.skipped for batch in batches)
    assert len(batch_counts) == 1  # DistributedDataParallel needs every process to take as many steps
    assert sorted(seen) == sorted(_train_keys(paths)) and skipped == 1


def test_shards_holding_fewer_samples_than_their_parquet_lists_are_a_shard_error(shards):
    share = _shares(shard_paths(shards), 2)[0]
    with pytest.raises(ShardError, match="hold other training samples than the"):
        list(share_batches(Share(share.shards, share.samples + 1, share.batches), _decoder(), SETTINGS["holdout"],
                           0, 0))


def test_every_process_has_its_own_seeds_and_one_alone_keeps_the_seed():
    assert World().seed(5) == 5
    assert len({World(rank, 2).seed(seed) for rank in range(2) for seed in range(3)}) == 6


def test_two_processes_train_a_model_that_loads(shards, trained):
    model_dir, summary = trained
    model, tags = load_tagger(model_dir)
    assert tags == ["red", "green", "blue"] and model.config.name == "tiny"
    paths = shard_paths(shards)
    assert summary["train_samples"] == count_split(paths, "train", SETTINGS["holdout"])
    assert summary["holdout"]["samples"] == count_split(paths, "holdout", SETTINGS["holdout"])
    assert summary["skipped_samples"] == 1  # the one undecodable sample, in one process's share
    assert summary["steps"] == _steps_per_epoch(shards)
    assert summary["config"]["nproc"] == 2
    assert json.loads((model_dir / "train.json").read_text()) == json.loads(json.dumps(summary))
    assert [line["epoch"] for line in _lines(model_dir / "metrics.jsonl")] == [1]


def test_the_thresholds_are_calibrated_on_the_held_out_samples_of_both_processes(shards, trained):
    model_dir, _ = trained
    model, tags = load_tagger(model_dir)
    loader = make_loader(shard_paths(shards), _decoder(), 2 * BATCH, "holdout", SETTINGS["holdout"])
    found = predict(model, loader, torch.device("cpu"))
    expected = calibrate_thresholds(found.scores, found.targets, model.config.default_threshold,
                                    SETTINGS["min_support"])
    assert read_meta(model_dir)["thresholds"] == pytest.approx(expected.tolist(), abs=1e-5)


def test_tagmill_train_nproc_resumes_for_more_epochs(shards, trained, tmp_path, capsys):
    model_dir = tmp_path / "model"
    shutil.copytree(trained[0], model_dir)
    first_line = (model_dir / "metrics.jsonl").read_text().splitlines()[0]
    code = main(["train", "--shards", str(shards), "--out", str(model_dir), "--nproc", "2",
                 *(f"--set={key}={json.dumps(value)}" for key, value in {**SETTINGS, "epochs": 2}.items()
                   if key != "nproc")])
    assert code == 0 and "trained on" in capsys.readouterr().out
    lines = (model_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and lines[0] == first_line and json.loads(lines[1])["epoch"] == 2
    state = json.loads((model_dir / STATE_DIR / "state.json").read_text())
    assert (state["epoch"], state["batches_done"], state["step"]) == (2, 0, 2 * _steps_per_epoch(shards))


@pytest.mark.slow
def test_two_runs_of_two_processes_train_the_same_weights(shards, trained, tmp_path):
    train(shards, tmp_path, _config())
    first, second = load_file(str(trained[0] / "model.safetensors")), load_file(str(tmp_path / "model.safetensors"))
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def _torchrun_until_mid_epoch(shards: Path, model_dir: Path, epochs: int) -> dict:
    """`tagmill train` under torchrun, stopped as soon as it has checkpointed in the middle of an epoch."""
    overrides = [f"--set={key}={json.dumps(value)}" for key, value in
                 {**SETTINGS, "epochs": epochs, "checkpoint_every": 1, "nproc": 1}.items()]  # torchrun's count wins
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "tagmill.pipeline.cli", "train", "--shards", str(shards), "--out", str(model_dir), *overrides]
    state_file = model_dir / STATE_DIR / "state.json"
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as torchrun:
        while torchrun.poll() is None and not (state_file.is_file() and
                                                json.loads(state_file.read_text())["batches_done"]):
            time.sleep(0.02)
        torchrun.terminate()  # torchrun stops its processes
    return json.loads(state_file.read_text())


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_under_torchrun_resumes_without_repeating_batches(shards, tmp_path):
    stopped = _torchrun_until_mid_epoch(shards, tmp_path, epochs=3)
    assert stopped["epoch"] < 3
    summary = train(shards, tmp_path, _config(epochs=3))
    assert summary["steps"] == 3 * _steps_per_epoch(shards)  # no batch trained on twice, none left out
    assert [line["epoch"] for line in _lines(tmp_path / "metrics.jsonl")] == [1, 2, 3]
