"""What a shard set holds, read from the Parquet files beside the tars: its tags and its sample ids."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import pyarrow.parquet as pq

from tagmill.engine import storage
from tagmill.model.data import ShardError, in_split

T = TypeVar("T")
REMOTE_READS = 16  # Parquet files read at once from an object store, where each read waits on the network


def shard_vocabulary(paths: list[str]) -> list[str]:
    """The run's vocab.json next to the shards folder when there is one, else every tag the shards hold."""
    run_vocab = _run_vocab(paths)
    if run_vocab is not None:
        return list(run_vocab["tags"])
    tags = sorted(set().union(*_each(paths, _tags)))
    if not tags:
        raise ShardError(f"the shards at {storage.parent(paths[0])} hold no tags to train on")
    return tags


def shard_synonyms(paths: list[str]) -> dict[str, list[str]]:
    """The synonyms of the run's vocab.json next to the shards folder, empty without one: how the
    shards' tags map onto the tags of a model trained elsewhere (an imported RAM model)."""
    run_vocab = _run_vocab(paths)
    return dict(run_vocab.get("synonyms", {})) if run_vocab is not None else {}


def _run_vocab(paths: list[str]) -> dict | None:
    """The run's vocab.json next to the shards folder, or None."""
    vocab_file = storage.join(storage.parent(storage.parent(paths[0])), "vocab.json")
    return json.loads(storage.read_text(vocab_file)) if storage.is_file(vocab_file) else None


def count_split(paths: list[str], split: str, holdout: float) -> int:
    return sum(split_counts(paths, split, holdout))


def split_counts(paths: list[str], split: str, holdout: float) -> list[int]:
    """Each shard's number of samples in `split`."""
    return _each(paths, lambda path: sum(in_split(key, split, holdout) for key in _column(path, "id")))


def _tags(tar_path: str) -> set[str]:
    return {tag for row in _column(tar_path, "tags") for tag in row}


def _each(paths: list[str], read: Callable[[str], T]) -> list[T]:
    """`read` of every shard, in the order of `paths`; from an object store, several shards at once."""
    if paths and storage.is_url(paths[0]):
        with ThreadPoolExecutor(REMOTE_READS) as pool:
            return list(pool.map(read, paths))
    return [read(path) for path in paths]


def _column(tar_path: str, name: str) -> list:
    table_path = os.path.splitext(tar_path)[0] + ".parquet"
    try:
        with storage.open_file(table_path) as stream:
            return pq.read_table(stream, columns=[name]).column(name).to_pylist()
    except FileNotFoundError:
        raise ShardError(f"{tar_path} has no {storage.name(table_path)} beside it (write shards with "
                         f"`tagmill run`)") from None


def shard_captions(paths: list[str]):
    """Every caption of every sample, shard by shard (for training a caption tokenizer)."""
    for path in paths:
        for captions in _column(path, "captions"):
            yield from captions
