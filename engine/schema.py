"""The versioned output contract: the per-sample JSON in each tar and the Parquet table beside it."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from tagmill.engine.records import Record
from tagmill.engine.text import quoted
from tagmill.engine.webdataset_tar import Place

SCHEMA_VERSION = 3  # 2: per-tag scores and the dropped tags with their rule; 3: where each image sits in its tar

TAG_SOURCE = pa.struct([
    ("tag", pa.string()),
    ("source", pa.string()),
    ("caption", pa.int32()),
    ("text", pa.string()),
    ("score", pa.float32()),
])

TAG_SCORES = pa.struct([
    ("tag", pa.string()),
    ("tagger", pa.float32()),
    ("clip", pa.float32()),
    ("outlier", pa.float32()),
])

TAG_DROP = pa.struct([
    ("tag", pa.string()),
    ("rule", pa.string()),
    ("score", pa.float32()),
    ("threshold", pa.float32()),
])

IMAGE_PLACE_COLUMNS = ("image_offset", "image_size")  # where each image sits in the shard's tar (schema 3 on)

SAMPLES = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("captions", pa.list_(pa.string())),
        ("generated_caption", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("tag_sources", pa.list_(TAG_SOURCE)),
        ("tag_scores", pa.list_(TAG_SCORES)),
        ("dropped", pa.list_(TAG_DROP)),
        ("image_ext", pa.string()),
        ("image_format", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("meta_json", pa.string()),
        ("image_offset", pa.int64()),  # the image's bytes in the shard's tar, for a ranged read
        ("image_size", pa.int64()),
    ],
    metadata={"tagmill.schema": str(SCHEMA_VERSION)},
)


def sample_json(record: Record) -> dict[str, Any]:
    """What a shard's KEY.json holds: captions, final tags, and per tag where it came from."""
    sources: dict[str, list[dict[str, Any]]] = {}
    for source in record.tags:
        entry = {"source": source.source, "caption": source.caption, "text": source.text}
        if source.score is not None:
            entry["score"] = source.score
        sources.setdefault(source.tag, []).append(entry)
    return {
        "schema": SCHEMA_VERSION,
        "id": record.id,
        "source": record.source,
        "captions": record.captions,
        "generated_caption": record.generated_caption,
        "tags": record.tag_names(),
        "tag_sources": sources,
        "scores": record.scores,
        "dropped": record.dropped,
        "image": {"ext": record.image_ext, "format": record.image_format,
                  "width": record.width, "height": record.height},
        "meta": record.meta,
    }


def samples_table(records: list[Record], image_places: list[Place]) -> pa.Table:
    """The shard's table; `image_places` are where each record's image sits in the tar (`write_tar` tells)."""
    rows = [_row(r, place) for r, place in zip(records, image_places, strict=True)]
    return pa.Table.from_pylist(rows, schema=SAMPLES)


def _row(record: Record, image_place: Place) -> dict[str, Any]:
    return {
        "id": record.id,
        "source": record.source,
        "captions": record.captions,
        "generated_caption": record.generated_caption,
        "tags": record.tag_names(),
        "tag_sources": [{"tag": s.tag, "source": s.source, "caption": s.caption, "text": s.text,
                         "score": s.score} for s in record.tags],
        "tag_scores": [{"tag": tag, **{k: scores.get(k) for k in ("tagger", "clip", "outlier")}}
                       for tag, scores in sorted(record.scores.items())],
        "dropped": [{"tag": tag, **drop} for tag, drop in sorted(record.dropped.items())],
        "image_ext": record.image_ext,
        "image_format": record.image_format,
        "width": record.width,
        "height": record.height,
        "meta_json": json.dumps(record.meta, sort_keys=True, ensure_ascii=False),
        "image_offset": image_place[0],
        "image_size": image_place[1],
    }


def reject_json(record: Record) -> dict[str, Any]:
    """One line of rejects.jsonl: which input, from where, and why.

    A reject may quote input that is not valid UTF-8 (that can be why it is one): such code points
    are written as visible `\\udc80` escapes, so the file stays UTF-8 and says what was wrong.
    """
    return {"id": quoted(record.id), "source": quoted(record.source), "reason": record.reject_reason,
            "message": quoted(record.reject_message), "shard": record.shard, "index": record.index}
