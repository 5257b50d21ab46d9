"""Checking input text as it arrives: captions present, text, valid UTF-8, not absurdly long; metadata valid UTF-8.

Text UTF-8 cannot encode (see `tagmill.engine.text`) makes its record a reject, or is repaired to
U+FFFD when `repair` is set (the run config's `input.repair_text`).
"""

from __future__ import annotations

from typing import Any

from tagmill.engine.records import RecordError, Reject
from tagmill.engine.text import REPAIR_HINT, find_invalid, first_invalid, invalid_message, repaired, repaired_value


def decode_caption(data: bytes, repair: bool = False) -> str:
    """A caption file's bytes as text (a byte-order mark dropped); RecordError when they are not UTF-8.

    With `repair`, each undecodable sequence becomes U+FFFD instead.
    """
    return decode_text(data, "caption", Reject.CAPTION_NOT_UTF8, repair)


def decode_text(data: bytes, what: str, reason: str, repair: bool = False, encoding: str = "utf-8-sig") -> str:
    """Input bytes as text; a RecordError with `reason`, naming `what`, when they are not UTF-8, or with
    `repair` each undecodable sequence as U+FFFD."""
    try:
        return data.decode(encoding, errors="replace" if repair else "strict")
    except UnicodeDecodeError as err:
        message = f"{what} is not UTF-8 text: {err.reason} at byte {err.start}; {REPAIR_HINT}"
        raise RecordError(reason, message) from None


def check_captions(value: object, max_chars: int, repair: bool = False) -> list[str]:
    """One caption or a list of them, as a list of stripped non-empty strings."""
    if value is None:
        raise RecordError(Reject.CAPTION_MISSING, "the sample has no caption")
    values = value if isinstance(value, list) else [value]
    if not values:
        raise RecordError(Reject.CAPTION_MISSING, "the sample's caption list is empty")
    captions = [_check_one(v, max_chars, repair) for v in values]
    return captions


def _check_one(value: object, max_chars: int, repair: bool) -> str:
    if value is None:
        raise RecordError(Reject.CAPTION_MISSING, "a caption is null")
    if not isinstance(value, str):
        raise RecordError(Reject.CAPTION_NOT_STRING, f"a caption is a {type(value).__name__}, not text")
    text = _valid_caption_text(value, repair).strip()
    if not text:
        raise RecordError(Reject.CAPTION_EMPTY, "a caption is empty")
    if len(text) > max_chars:
        raise RecordError(Reject.CAPTION_TOO_LONG, f"a caption has {len(text)} characters; the limit is {max_chars}")
    if "\x00" in text:
        raise RecordError(Reject.CAPTION_NOT_UTF8, "a caption contains NUL characters")
    return text


def _valid_caption_text(text: str, repair: bool) -> str:
    position = first_invalid(text)
    if position is None:
        return text
    if repair:
        return repaired(text)
    raise RecordError(Reject.CAPTION_NOT_UTF8, invalid_message("a caption", text, position))


def check_metadata(meta: dict[str, Any], repair: bool = False) -> dict[str, Any]:
    """The input's own per-sample metadata, every key and string value valid UTF-8 text (or repaired)."""
    if repair:
        return repaired_value(meta)
    problem = find_invalid(meta, "the metadata")
    if problem is not None:
        raise RecordError(Reject.TEXT_NOT_UTF8, problem)
    return meta

