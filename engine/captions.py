"""Checking captions as they arrive: present, text, decodable, not absurdly long."""

from __future__ import annotations

from tagmill.engine.records import RecordError, Reject


def decode_caption(data: bytes) -> str:
    """A caption file's bytes as text (a byte-order mark dropped); RecordError when they are not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RecordError(Reject.CAPTION_NOT_UTF8, f"caption is not UTF-8 text: {err.reason} at byte {err.start}") \
            from None


def check_captions(value: object, max_chars: int) -> list[str]:
    """One caption or a list of them, as a list of stripped non-empty strings."""
    if value is None:
        raise RecordError(Reject.CAPTION_MISSING, "the sample has no caption")
    values = value if isinstance(value, list) else [value]
    if not values:
        raise RecordError(Reject.CAPTION_MISSING, "the sample's caption list is empty")
    captions = [_check_one(v, max_chars) for v in values]
    return captions


def _check_one(value: object, max_chars: int) -> str:
    if value is None:
        raise RecordError(Reject.CAPTION_MISSING, "a caption is null")
    if not isinstance(value, str):
        raise RecordError(Reject.CAPTION_NOT_STRING, f"a caption is a {type(value).__name__}, not text")
    text = value.strip()
    if not text:
        raise RecordError(Reject.CAPTION_EMPTY, "a caption is empty")
    if len(text) > max_chars:
        raise RecordError(Reject.CAPTION_TOO_LONG, f"a caption has {len(text)} characters; the limit is {max_chars}")
    if "\x00" in text:
        raise RecordError(Reject.CAPTION_NOT_UTF8, "a caption contains NUL characters")
    return text
