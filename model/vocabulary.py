"""What a shard set holds, read from the Parquet files beside the tars: its tags and its sample ids."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tagmill.model.data import ShardError, in_split


def shard_vocabulary(paths: list[str]) -> list[str]:
    """The run's vocab.json next to the shards folder when there is one, else every tag the shards hold."""
    run_vocab = _run_vocab(paths)
    if run_vocab is not None:
        return list(run_vocab["tags"])
    tags = sorted({tag for path in paths for row in _column(path, "tags") for tag in row})
    if not tags:
        raise ShardError(f"the shards at {Path(paths[0]).parent} hold no tags to train on")
    return tags


def shard_synonyms(paths: list[str]) -> dict[str, list[str]]:
    """The synonyms of the run's vocab.json next to the shards folder, empty without one: how the
    shards' tags map onto the tags of a model trained elsewhere (an imported RAM model)."""
    run_vocab = _run_vocab(paths)
    return dict(run_vocab.get("synonyms", {})) if run_vocab is not None else {}


def _run_vocab(paths: list[str]) -> dict | None:
    """The run's vocab.json next to the shards folder, or None."""
    vocab_file = Path(paths[0]).parent.parent / "vocab.json"
    return json.loads(vocab_file.read_text()) if vocab_file.is_file() else None


def count_split(paths: list[str], split: str, holdout: float) -> int:
    return sum(split_counts(paths, split, holdout))


def split_counts(paths: list[str], split: str, holdout: float) -> list[int]:
    """Each shard's number of samples in `split`."""
    return [sum(in_split(key, split, holdout) for key in _column(path, "id")) for path in paths]


def _column(tar_path: str, name: str) -> list:
    table_path = Path(tar_path).with_suffix(".parquet")
    if not table_path.is_file():
        raise ShardError(f"{tar_path} has no {table_path.name} beside it (write shards with `tagmill run`)")
    return pq.read_table(table_path, columns=[name]).column(name).to_pylist()


def shard_captions(paths: list[str]):
    """Every caption of every sample, shard by shard (for training a caption tokenizer)."""
    for path in paths:
        for captions in _column(path, "captions"):
            yield from captions
