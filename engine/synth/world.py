"""The synthetic world: captioned images whose true tags are known, with web-like caption noise.

Each sample is a textured scene with one to four coloured shapes drawn on it. Its truth is the
sorted set of canonical tags: the shapes, the colours of the shapes present, and the scene. Its
caption names them in varied English (synonyms, counts, plurals, negations of absent shapes) and is
corrupted the way web captions are: present objects left out, absent objects made up, colours named
wrongly. The output is laid out as img2dataset writes webdataset shards; the truth stays beside the
shards in ``truth.jsonl`` so that nothing downstream can read it by accident.

Every sample draws from its own generator seeded by ``(seed, index)``, so a sample does not depend
on the shard size, and the same config always gives byte-identical files.

This module writes the samples out; `synth_plan` decides what each holds and what its caption
says, and `synth_render` draws its pixels.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tagmill.engine import storage
from tagmill.engine.synth.plan import (
    COLOURS,
    SCENE_PHRASES,
    SCENES,
    SHAPES,
    WORLD_TAGS,
    Mention,
    SamplePlan,
    SynthConfig,
    SynthObject,
    plan_sample,
    pluralise,
    world_synonyms,
    world_vocabulary,
)
from tagmill.engine.synth.render import make_texture_bank, render_jpeg
from tagmill.engine.webdataset_tar import write_tar

__all__ = [
    "COLOURS", "SCENE_PHRASES", "SCENES", "SHAPES", "WORLD_TAGS", "Mention", "SamplePlan", "SynthConfig",
    "SynthObject", "SynthSummary", "make_texture_bank", "plan_sample", "pluralise", "render_jpeg",
    "synthesize", "world_synonyms", "world_vocabulary",
]


@dataclass(frozen=True)
class SynthSummary:
    """What `synthesize` wrote: the sample count, the shard count and the tar shard paths."""

    n: int
    shards: int
    paths: tuple[str, ...]


_PARQUET_SCHEMA = pa.schema([
    ("url", pa.string()), ("caption", pa.string()), ("key", pa.string()), ("status", pa.string()),
    ("error_message", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
    ("original_width", pa.int64()), ("original_height", pa.int64()), ("sha256", pa.string()),
])


@dataclass(frozen=True)
class _Record:
    key: str
    jpg: bytes
    meta: dict
    tags: list[str]


def synthesize(out_dir: str | Path, config: SynthConfig) -> SynthSummary:
    """Writes `config.n` samples as img2dataset-style shards into `out_dir` (a folder or a URL), with their truth."""
    out = str(out_dir)
    storage.makedirs(out)
    bank = make_texture_bank(config.seed, config.image_size)
    tars, truth = [], []
    for shard in range(-(-config.n // config.shard_size)):
        first = shard * config.shard_size
        indices = range(first, min(first + config.shard_size, config.n))
        records = [_record(plan_sample(config, i), config, bank) for i in indices]
        tars.append(_write_shard(out, shard, records))
        truth.extend(json.dumps({"key": r.key, "tags": r.tags}) + "\n" for r in records)
    _write_world(out, truth)
    return SynthSummary(config.n, len(tars), tuple(tars))


def _record(plan: SamplePlan, config: SynthConfig, bank: dict[str, list[np.ndarray]]) -> _Record:
    """The image and the per-sample json img2dataset would have written for it."""
    jpg = render_jpeg(plan, config, bank)
    size = config.image_size
    meta = {"url": f"synth://{plan.key}", "caption": plan.caption, "key": plan.key, "status": "success",
            "error_message": None, "width": size, "height": size, "original_width": size,
            "original_height": size, "sha256": hashlib.sha256(jpg).hexdigest()}
    return _Record(plan.key, jpg, meta, plan.tags)


def _write_shard(out: str, shard: int, records: list[_Record]) -> str:
    """`NNNNN.tar`, `NNNNN.parquet` and, last, `NNNNN_stats.json`, each existing only when whole."""
    name = f"{shard:05d}"
    storage.write_atomic(storage.join(out, f"{name}.tar"), lambda stream: _write_tar(stream, records))
    table = pa.Table.from_pylist([r.meta for r in records], schema=_PARQUET_SCHEMA)
    storage.write_atomic(storage.join(out, f"{name}.parquet"), lambda stream: pq.write_table(table, stream))
    storage.write_text(storage.join(out, f"{name}_stats.json"), _stats(len(records)))
    return storage.join(out, f"{name}.tar")


def _write_tar(stream, records: list[_Record]) -> None:
    """Members in key order, jpg/json/txt per key, with a fixed mtime so reruns are byte-identical."""
    write_tar(stream, ((r.key, {"jpg": r.jpg, "json": json.dumps(r.meta, indent=4).encode(),
                                "txt": r.meta["caption"].encode("utf-8")}) for r in records))


def _stats(count: int) -> str:
    """img2dataset's per-shard stats; times are zero so that the file is deterministic."""
    stats = {"count": count, "successes": count, "failed_to_download": 0, "failed_to_resize": 0,
             "duration": 0, "start_time": 0, "end_time": 0, "status_dict": {"success": count}}
    return json.dumps(stats, indent=4)


def _write_world(out: str, truth: list[str]) -> None:
    """truth.jsonl, tags.txt (RAM's tag list format) and synonyms.json."""
    storage.write_text(storage.join(out, "truth.jsonl"), "".join(truth))
    storage.write_text(storage.join(out, "tags.txt"), "\n".join(WORLD_TAGS) + "\n")
    storage.write_text(storage.join(out, "synonyms.json"), json.dumps(world_synonyms(), indent=2, sort_keys=True) + "\n")
