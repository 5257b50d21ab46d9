"""Merging a tagger's scores into a record: generated tags above their thresholds, every candidate scored."""

import numpy as np
import pytest

from tagmill.engine.merge import GeneratedTags, VocabularyMismatch
from tagmill.engine.records import Record, TagSource

TAGS = ["cat", "dog", "zebra"]
THRESHOLDS = np.array([0.5, 0.6, 0.5], dtype=np.float32)


def record_naming(*tags: str) -> Record:
    return Record("a", "in.tar", 0, 0, tags=[TagSource(tag, "parsed") for tag in tags])


def test_tags_at_or_above_their_thresholds_are_generated_and_every_candidate_is_scored():
    merge = GeneratedTags(TAGS, THRESHOLDS, ["cat", "dog", "bird"])
    record = record_naming("bird", "dog")
    assert merge.merge(record, np.array([0.5, 0.55, 0.9], dtype=np.float32)) == 1
    assert [(s.tag, s.source) for s in record.tags] == [("bird", "parsed"), ("dog", "parsed"), ("cat", "generated")]
    assert record.scores == {"dog": {"tagger": pytest.approx(0.55)}, "cat": {"tagger": pytest.approx(0.5)}}
    assert merge.unknown == ["zebra"]  # outside the run's vocabulary: never generated


def test_a_margin_raises_the_bar_for_tags_no_caption_names():
    merge = GeneratedTags(TAGS, THRESHOLDS, TAGS, margin=0.1)
    record = record_naming("dog")
    assert merge.merge(record, np.array([0.59, 0.3, 0.61], dtype=np.float32)) == 1
    assert record.candidate_tags() == ["dog", "zebra"]
    assert record.scores["dog"] == {"tagger": pytest.approx(0.3)}  # parsed: scored, never removed here


def test_a_tagger_of_other_tags_is_a_mismatch():
    with pytest.raises(VocabularyMismatch, match="share none"):
        GeneratedTags(["zebra"], np.array([0.5]), ["cat"])
