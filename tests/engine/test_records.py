"""Sample ids that can name output files, and the record's own small behaviours."""

from __future__ import annotations

import pytest

from tagmill.engine.records import Record, RecordError, Reject, TagSource, check_id


@pytest.mark.parametrize("value, expected", [
    (7, "7"),
    (0, "0"),
    (-3, "-3"),
    ("000123", "000123"),
    ("img_0001-b", "img_0001-b"),
    ("COCO:391895", "COCO:391895"),
    ("a b", "a b"),
    ("x" * 200, "x" * 200),
])
def test_accepted_ids(value, expected):
    assert check_id(value) == expected


@pytest.mark.parametrize("value", [None, ""])
def test_missing_id(value):
    with pytest.raises(RecordError) as caught:
        check_id(value)
    assert caught.value.reason == Reject.ID_MISSING


@pytest.mark.parametrize("value", [
    "../x", "/abs", "a/b", "a\\b", "a.b", ".", "..", "a\x00b", "a\nb", " lead", "trail ", "   ",
    "x" * 201, True, False, {"id": 1}, ["a"], 1.5, b"abc",
])
def test_unsafe_ids(value):
    with pytest.raises(RecordError) as caught:
        check_id(value)
    assert caught.value.reason == Reject.ID_UNSAFE


def record(**fields) -> Record:
    return Record(id="s1", source="manifest.jsonl:1", shard=0, index=0, **fields)


def test_reject_clears_the_image_and_keeps_the_reason():
    sample = record(image=b"\xff\xd8 jpeg bytes", captions=["a dog"])
    assert not sample.rejected
    assert sample.reject(Reject.IMAGE_CORRUPT, "cannot decode the image") is sample
    assert sample.rejected
    assert sample.image is None
    assert (sample.reject_reason, sample.reject_message) == (Reject.IMAGE_CORRUPT, "cannot decode the image")
    assert sample.captions == ["a dog"]


def test_tag_names_sorted_and_unique():
    sample = record(tags=[
        TagSource("dog", "parsed", caption=0, text="dogs"),
        TagSource("cat", "parsed", caption=1, text="cat"),
        TagSource("dog", "parsed", caption=1, text="puppy"),
        TagSource("beach", "generated", score=0.9),
    ])
    assert sample.tag_names() == ["beach", "cat", "dog"]
    assert record().tag_names() == []


def test_record_error_carries_reason_and_message():
    error = RecordError(Reject.ID_UNSAFE, "bad id")
    assert isinstance(error, ValueError)
    assert (error.reason, error.message, str(error)) == (Reject.ID_UNSAFE, "bad id", "bad id")
