"""Training gives the same weights whatever torch thread count or random state the process had before."""

from __future__ import annotations

import contextlib
import io
import json
import random

import pytest
import torch
from safetensors.torch import load_file

from tagmill.engine.synth.world import SynthConfig, synthesize
from tagmill.model.train import load_train_config, train
from tagmill.pipeline.job import run

SETTINGS = {"epochs": 1, "workers": 0, "batch_size": 16, "holdout": 0.25, "min_support": 3}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    world, out = tmp_path_factory.mktemp("world"), tmp_path_factory.mktemp("run")
    synthesize(world, SynthConfig(n=96, shard_size=48, image_size=32))
    with contextlib.redirect_stdout(io.StringIO()):
        run(["--input", str(world), "--output", str(out)])
    return out


@pytest.fixture
def restored_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _config(**more):
    settings = {**SETTINGS, **more}
    return load_train_config(None, [f"{key}={json.dumps(value)}" for key, value in settings.items()])


def _trained_after(shards, folder, caller_threads: int, caller_seed: int, **more) -> dict:
    torch.set_num_threads(caller_threads)
    random.seed(caller_seed)
    train(shards, folder, _config(**more))
    return load_file(str(folder / "model.safetensors"))


def _assert_same_weights(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def test_training_does_not_inherit_the_callers_thread_count_or_random_state(shards, tmp_path, restored_threads):
    first = _trained_after(shards, tmp_path / "a", caller_threads=1, caller_seed=1, threads=2)
    second = _trained_after(shards, tmp_path / "b", caller_threads=2, caller_seed=2, threads=2)
    _assert_same_weights(first, second)


def test_training_by_default_uses_the_cores_the_process_may_use(shards, tmp_path, restored_threads):
    first = _trained_after(shards, tmp_path / "a", caller_threads=1, caller_seed=0)
    second = _trained_after(shards, tmp_path / "b", caller_threads=3, caller_seed=0)
    _assert_same_weights(first, second)


def test_training_gives_the_caller_its_thread_count_back(shards, tmp_path, restored_threads):
    torch.set_num_threads(1)
    train(shards, tmp_path, _config(threads=2))
    assert torch.get_num_threads() == 1
