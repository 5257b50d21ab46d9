"""The input's index: each task's ids, read where the records are, and from them how many records each
task holds and which ids repeat, so that the first occurrence of an id wins wherever the copies sit.

The run's graph reads the index on the runner's workers (`kept_ids`, `id_places`, `later_places`,
`with_duplicates`); `mark_duplicates` does the same in one process (`tagmill vocab`, the benchmark's
plain loop). Each task's ids are kept beside the run's output with the version of the file they were
read from, so a rerun reads the ids again only of input that has changed.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from typing import Iterable, Iterator, Mapping

from tagmill.engine import storage
from tagmill.pipeline.sources import ShardTask, read_ids

INDEX_FORMAT = 1  # what kept ids hold and the rules they were read by: kept ids of another format are read again


def shard_ids(task: ShardTask) -> tuple[int, tuple[str | None, ...]]:
    """A task's index and the id of each record it yields, in order (`sources.read_ids`)."""
    return task.index, read_ids(task)[0]


def kept_ids(task: ShardTask, index_dir: str) -> tuple[int, tuple[str | None, ...]]:
    """`shard_ids`, kept in INDEX_DIR/NNNNN.json with the version of the file they were read from, so
    that a rerun reads the ids again only of input that has changed since.

    Ids are kept only of a file whose version its filesystem tells, and that was read to its end: a tar
    that breaks off (damaged, or an I/O error that may pass) is read again by every run.
    """
    path = storage.join(index_dir, f"{task.name}.json")
    key = _index_key(task)
    saved = _saved_ids(path) if key is not None else None
    if saved is not None and {name: saved.get(name) for name in key} == key:
        return task.index, tuple(saved["ids"])
    ids, whole = read_ids(task)
    if key is not None and whole:
        storage.makedirs(index_dir)
        storage.write_text(path, json.dumps({**key, "ids": ids}))
    return task.index, ids


def _index_key(task: ShardTask) -> dict | None:
    """What kept ids must match to stand for the task; None where the file's version cannot be told."""
    try:
        version = storage.version(task.path)
    except OSError:  # gone or unreadable: the read turns that into a reject
        return None
    if version is None:
        return None
    return {"format": INDEX_FORMAT, "source": task.source, "version": version, "start": task.start, "stop": task.stop}


def _saved_ids(path: str) -> dict | None:
    try:
        return json.loads(storage.read_text(path))
    except (OSError, ValueError):  # none kept yet, or not readable: read the input
        return None


def id_places(indexed: tuple[int, tuple[str | None, ...]]) -> Iterator[tuple[str, tuple[int, int]]]:
    """(id, (task, position)) for each record of an indexed task that has an id."""
    shard, ids = indexed
    for position, sample_id in enumerate(ids):
        if sample_id is not None:
            yield sample_id, (shard, position)


def later_places(id_and_places: tuple[str, Iterable[tuple[int, int]]]) -> list[tuple[int, int]]:
    """The (task, position) of every occurrence of an id but the first in input order."""
    return sorted(id_and_places[1])[1:]


def with_duplicates(task: ShardTask, duplicates: Mapping[int, Iterable[int]]) -> ShardTask:
    """The task with its duplicate positions, from the index's {task: positions} (a Beam multimap side
    input, which gives an empty list for a task without any)."""
    return dataclasses.replace(task, duplicates=tuple(sorted(duplicates[task.index])))


def mark_duplicates(tasks: list[ShardTask]) -> list[ShardTask]:
    """The tasks with their duplicates, indexed in this process (the run's graph indexes on its workers)."""
    index = [shard_ids(task) for task in tasks]
    duplicates: dict[int, list[int]] = defaultdict(list)
    seen: set[str] = set()
    for sample_id, (shard, position) in (pair for indexed in index for pair in id_places(indexed)):
        if sample_id in seen:
            duplicates[shard].append(position)
        seen.add(sample_id)
    return [with_duplicates(task, duplicates) for task in tasks]
