"""Merging a tagger's scores into a record: generated tags above their thresholds, every candidate scored."""

import numpy as np
import pytest

from tagmill.engine.merge import GeneratedTags, VocabularyMismatch, match_tags
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


def test_the_run_vocabulary_maps_onto_the_model_tags_by_name_then_by_synonym():
    model_tags = ["Cat", "puppy", "zebra", "dog house"]
    synonyms = {"dog": ["hound", "puppy"], "bird": ["sparrow"]}
    match = match_tags(model_tags, ["cat", "dog", "bird", "dog_house"], synonyms)
    assert match.columns == {"cat": 0, "dog": 1, "dog_house": 3}
    assert match.by_synonym == {"dog": "puppy"}
    assert match.model_only == ["zebra"] and match.vocabulary_only == ["bird"]
    assert match.report()["matched"] == 3


def test_a_model_tag_of_the_same_name_wins_over_another_tags_synonym():
    match = match_tags(["dog", "cat"], ["pet", "dog"], {"pet": ["dog", "cat"]})
    assert match.columns == {"pet": 1, "dog": 0} and match.by_synonym == {"pet": "cat"}


def test_run_tags_that_differ_only_in_case_or_spacing_do_not_share_a_model_column():
    match = match_tags(["dog", "cat"], ["dog", "Dog", "cat_"])
    assert match.columns == {"dog": 0, "cat_": 1} and match.vocabulary_only == ["Dog"]


def test_generated_tags_take_the_run_names_and_the_model_thresholds():
    merge = GeneratedTags(["puppy", "cat"], np.array([0.7, 0.5], dtype=np.float32), ["dog", "cat"], margin=0.1,
                          synonyms={"dog": ["puppy"]})
    record = record_naming("cat")
    assert merge.merge(record, np.array([0.85, 0.2], dtype=np.float32)) == 1
    assert record.candidate_tags() == ["cat", "dog"]
    assert record.scores["dog"] == {"tagger": pytest.approx(0.85)}
    assert record.scores["cat"] == {"tagger": pytest.approx(0.2)}
    assert merge.tagger_thresholds() == {"dog": pytest.approx(0.7), "cat": pytest.approx(0.5)}
