"""Captions as they arrive: present, text, decodable, not absurdly long; each failure with its reason."""

from __future__ import annotations

import pytest

from tagmill.engine.captions import check_captions, decode_caption
from tagmill.engine.records import RecordError, Reject

MAX = 40


def reason_of(value: object, max_chars: int = MAX) -> str:
    with pytest.raises(RecordError) as caught:
        check_captions(value, max_chars)
    return caught.value.reason


def test_one_caption_as_a_string():
    assert check_captions("  a dog on the grass \n", MAX) == ["a dog on the grass"]


def test_a_list_of_captions_keeps_order():
    assert check_captions(["a dog", " two cats "], MAX) == ["a dog", "two cats"]


def test_caption_at_the_length_limit_is_kept():
    assert check_captions("x" * MAX, MAX) == ["x" * MAX]
    assert check_captions("  " + "x" * MAX + "  ", MAX) == ["x" * MAX]  # counted after stripping


@pytest.mark.parametrize("value, reason", [
    (None, Reject.CAPTION_MISSING),
    ([], Reject.CAPTION_MISSING),
    ([None], Reject.CAPTION_MISSING),
    (["a dog", None], Reject.CAPTION_MISSING),
    (5, Reject.CAPTION_NOT_STRING),
    ([3.5], Reject.CAPTION_NOT_STRING),
    ({"text": "a dog"}, Reject.CAPTION_NOT_STRING),
    (b"a dog", Reject.CAPTION_NOT_STRING),
    ("   ", Reject.CAPTION_EMPTY),
    ("", Reject.CAPTION_EMPTY),
    (["a dog", "\n\t"], Reject.CAPTION_EMPTY),
    ("x" * (MAX + 1), Reject.CAPTION_TOO_LONG),
    ("a dog\x00on the grass", Reject.CAPTION_NOT_UTF8),
])
def test_rejected_captions(value, reason):
    assert reason_of(value) == reason


def test_too_long_message_gives_both_lengths():
    with pytest.raises(RecordError, match="has 41 characters; the limit is 40"):
        check_captions("x" * 41, MAX)


def test_decode_utf8():
    assert decode_caption("a caf\u00e9 by the sea".encode()) == "a caf\u00e9 by the sea"


@pytest.mark.parametrize("data", [b"a caf\xe9", b"\xff\xfe\x00a", b"\xc3"])
def test_decode_not_utf8(data):
    with pytest.raises(RecordError) as caught:
        decode_caption(data)
    assert caught.value.reason == Reject.CAPTION_NOT_UTF8
    assert "not UTF-8" in caught.value.message


def test_caption_file_with_byte_order_mark():
    assert decode_caption(b"\xef\xbb\xbfa dog") == "a dog"
