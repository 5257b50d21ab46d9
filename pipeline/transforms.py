"""The per-record steps between reading and writing: thin wrappers over `tagmill.engine`."""

from __future__ import annotations

from typing import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from tagmill.engine.images import inspect_image
from tagmill.engine.parse.parser import CaptionParser
from tagmill.engine.records import Record, RecordError, TagSource
from tagmill.engine.vocab import Vocabulary

NAMESPACE = "tagmill"


def check_image(record: Record, max_pixels: int) -> Record:
    """Decode the image once; a bad one turns the record into a reject."""
    if record.rejected:
        return record
    try:
        info = inspect_image(record.image, max_pixels)
    except RecordError as err:
        return record.reject(err.reason, err.message)
    record.width, record.height, record.image_format = info.width, info.height, info.format
    record.image_ext = record.image_ext or info.extension
    return record


def parsed_tags(parser: CaptionParser, captions: list[str]) -> list[TagSource]:
    """Each tag the captions name, once per caption, with the words that named it."""
    sources: dict[tuple[str, int], TagSource] = {}
    for number, caption in enumerate(captions):
        for mention in parser.mentions(caption):
            if mention.ignored is None:
                sources.setdefault((mention.tag, number), TagSource(mention.tag, "parsed", number, mention.text))
    return list(sources.values())


class ParseCaptions(beam.DoFn):
    """Parse stage: the vocabulary's tags named by each record's captions."""

    def __init__(self, vocab: dict):
        self._vocab_json = vocab

    def setup(self):
        self._parser = CaptionParser(Vocabulary.from_json(self._vocab_json))
        self._tags = Metrics.counter(NAMESPACE, "tags_parsed")

    def process(self, record: Record) -> Iterator[Record]:
        if not record.rejected:
            record.tags.extend(parsed_tags(self._parser, record.captions))
            self._tags.inc(len(record.tag_names()))
        yield record


class CountRecords(beam.DoFn):
    """Beam counters for what was read and rejected, by reason."""

    def setup(self):
        self._read = Metrics.counter(NAMESPACE, "samples_read")
        self._rejected = Metrics.counter(NAMESPACE, "samples_rejected")

    def process(self, record: Record) -> Iterator[Record]:
        self._read.inc()
        if record.rejected:
            self._rejected.inc()
            Metrics.counter(NAMESPACE, f"rejected_{record.reject_reason}").inc()
        yield record
