"""Writing output shards: `NNNNN.tar` (webdataset's layout), `NNNNN.parquet`, `NNNNN_rejects.jsonl`, `NNNNN_stats.json`.

Every file exists only when complete (`storage.write_atomic`: a local file is renamed from a
temporary name, an object uploaded in one piece), the stats file last, so a shard whose stats exist
is whole: a rerun skips it. Nothing varies between runs (no timestamps), so the same input and
config give byte-identical shards, in a folder or under a URL.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable, Iterator

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows
import pyarrow.parquet as pq

from tagmill.engine import storage
from tagmill.engine.records import Record, Reject
from tagmill.engine.schema import SCHEMA_VERSION, reject_json, sample_json, samples_table
from tagmill.engine.text import find_invalid
from tagmill.engine.webdataset_tar import write_tar

PARTS = "parts"  # records of shards that a bundle ended without, keyed by shard


def stats_name(shard: int) -> str:
    return f"{shard:05d}_stats.json"


def write_shard(shards_dir: str, shard: int, records: list[Record], fingerprint: str) -> dict[str, Any]:
    """Write one shard from all of its records (kept and rejected), in input order; return its stats."""
    records = sorted(records, key=lambda r: r.index)
    encoded = _encoded_samples(records)
    kept = [r for r in records if not r.rejected]
    rejected = [r for r in records if r.rejected]
    name = f"{shard:05d}"
    def write(file_name, content):
        storage.write_atomic(storage.join(shards_dir, file_name), content)

    places = []
    write(f"{name}.tar", lambda f: places.extend(write_tar(f, ((r.id, {r.image_ext: r.image, "json": encoded[id(r)]})
                                                               for r in kept))))
    image_places = [sample[r.image_ext] for r, sample in zip(kept, places, strict=True)]
    write(f"{name}.parquet", lambda f: pq.write_table(samples_table(kept, image_places), f))
    write(f"{name}_rejects.jsonl", lambda f: f.write(_jsonl(reject_json(r) for r in rejected)))
    stats = _stats(shard, records, kept, rejected, fingerprint)
    write(stats_name(shard), lambda f: f.write(_json_bytes(stats)))
    return stats


def _encoded_samples(records: list[Record]) -> dict[int, bytes]:
    """Each kept record's sample JSON, encoded once (by `id` of the record); a kept record whose output would
    hold text UTF-8 cannot encode is rejected instead.

    The readers already reject or repair such input text; this keeps the promise for text any later
    step adds, so that one record can never stop the writer, and with it the run.
    """
    encoded = {}
    for record in (r for r in records if not r.rejected):
        sample = sample_json(record)
        try:
            encoded[id(record)] = _json_bytes(sample)
        except UnicodeEncodeError:
            record.reject(Reject.TEXT_NOT_UTF8, find_invalid(sample, "the sample's output", repairable=False))
    return encoded


def _stats(shard: int, records: list[Record], kept: list[Record], rejected: list[Record],
           fingerprint: str) -> dict[str, Any]:
    tag_counts = Counter(tag for r in kept for tag in r.tag_names())
    return {
        "schema": SCHEMA_VERSION,
        "shard": shard,
        "fingerprint": fingerprint,
        "input": len(records),
        "written": len(kept),
        "rejected": len(rejected),
        "rejected_by_reason": dict(sorted(Counter(r.reject_reason for r in rejected).items())),
        "tag_counts": dict(sorted(tag_counts.items())),
    }


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")


def _jsonl(values) -> bytes:
    return b"".join(_json_bytes(v) + b"\n" for v in values)


class WriteShards(beam.PTransform):
    """Writes every shard whole, whatever bundles its records arrive in; yields each shard's stats.

    Where the runner keeps a shard's records in one bundle (one reader call feeds them, and the steps
    after it fuse), the shard is written as soon as its last record arrives, so memory holds only the
    shards in flight. Records of a shard that a bundle ends without (a runner that breaks fusion
    splits them) leave it keyed by their shard, and a `GroupByKey` brings each such shard together
    before it is written: the same bytes either way, since a shard is written in input order.

    `sizes` is the index's (shard, records) for every shard: a shard is written once all its records
    are there, and never with fewer. Shards of `pending` that hold no records are written empty.
    """

    def __init__(self, shards_dir: str, sizes: beam.PCollection, pending: set[int], fingerprint: str):
        super().__init__()
        self._shards_dir = shards_dir
        self._sizes = sizes
        self._pending = pending
        self._fingerprint = fingerprint

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        sizes = beam.pvalue.AsDict(self._sizes)
        written = records | "WriteWhole" >> beam.ParDo(
            _WriteWholeShards(self._shards_dir, self._fingerprint), sizes=sizes).with_outputs(PARTS, main="stats")
        gathered = (
            written[PARTS]
            | "GroupParts" >> beam.GroupByKey()
            | "WriteGathered" >> beam.Map(_write_gathered, shards_dir=self._shards_dir, sizes=sizes,
                                          fingerprint=self._fingerprint)
        )
        empty = (
            self._sizes
            | "EmptyShards" >> beam.Filter(lambda shard_size, pending: shard_size[1] == 0 and shard_size[0] in pending,
                                           pending=self._pending)
            | "WriteEmpty" >> beam.Map(_write_empty, shards_dir=self._shards_dir, fingerprint=self._fingerprint)
        )
        return (written.stats, gathered, empty) | "AllStats" >> beam.Flatten()


class _WriteWholeShards(beam.DoFn):
    """Writes each shard whose records all arrive within the bundle; hands on the rest by shard."""

    def __init__(self, shards_dir: str, fingerprint: str):
        self._shards_dir = shards_dir
        self._fingerprint = fingerprint

    def start_bundle(self):
        self._pending: dict[int, list[Record]] = {}

    def process(self, record: Record, sizes: dict[int, int]) -> Iterator[dict[str, Any]]:
        records = self._pending.setdefault(record.shard, [])
        records.append(record)
        if len(records) == sizes[record.shard]:
            del self._pending[record.shard]
            yield _write_counted(self._shards_dir, record.shard, records, self._fingerprint)

    def finish_bundle(self):
        for shard, records in self._pending.items():
            beam.metrics.Metrics.counter("tagmill", "shards_gathered_records").inc(len(records))
            for record in records:
                yield beam.pvalue.TaggedOutput(PARTS, GlobalWindows.windowed_value((shard, record)))
        self._pending = {}


def _write_gathered(shard_records: tuple[int, Iterable[Record]], shards_dir: str, sizes: dict[int, int],
                    fingerprint: str) -> dict[str, Any]:
    """Writes a shard brought together by its key; one that is still short lost records upstream."""
    shard, records = shard_records[0], list(shard_records[1])
    if len(records) != sizes[shard]:
        raise RuntimeError(f"shard {shard} gathered {len(records)} of its {sizes[shard]} records "
                           "(records lost upstream)")
    return _write_counted(shards_dir, shard, records, fingerprint)


def _write_empty(shard_size: tuple[int, int], shards_dir: str, fingerprint: str) -> dict[str, Any]:
    return _write_counted(shards_dir, shard_size[0], [], fingerprint)


def _write_counted(shards_dir: str, shard: int, records: list[Record], fingerprint: str) -> dict[str, Any]:
    stats = write_shard(shards_dir, shard, records, fingerprint)
    beam.metrics.Metrics.counter("tagmill", "shards_written").inc()
    return stats
