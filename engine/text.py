"""Text that UTF-8 can hold: finding the code points it cannot, and repairing or quoting them.

A Python string can hold lone surrogates (U+D800 to U+DFFF), which no UTF-8 file can: a JSON `\\udc80`
escape decodes to one, and bytes decoded with `surrogateescape` (tar member names, Parquet strings
that are not UTF-8) keep each undecodable byte as one. Left in a record, one of them stops the run
wherever the text is next encoded (spaCy, the shard writer). So input text is checked where it
enters: the record is rejected, or, when the run config asks for it, each such code point becomes
U+FFFD. Other code points, control characters included, are valid text and pass unchanged.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
REPAIR_HINT = "input.repair_text: true replaces it with U+FFFD"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def first_invalid(text: str) -> int | None:
    """The index of the first code point UTF-8 cannot encode, or None when the text is valid."""
    match = _LONE_SURROGATE.search(text)
    return match.start() if match else None


def repaired(text: str) -> str:
    """The text with every code point UTF-8 cannot encode replaced by U+FFFD."""
    return _LONE_SURROGATE.sub(REPLACEMENT, text)


def quoted(text: str) -> str:
    """The text with every code point UTF-8 cannot encode written as a visible `\\udc80` escape.

    For quoting bad input in messages and rejects, which must stay valid UTF-8 themselves.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def invalid_message(where: str, text: str, position: int, repairable: bool = True) -> str:
    """Why `text` (named by `where`) cannot be used: which code point, where, and what would repair it."""
    found = (f"{where} holds {text[position]!r} at character {position}, which is not valid Unicode "
             "(a lone surrogate: an undecodable byte or a JSON \\u escape)")
    return f"{found}; {REPAIR_HINT}" if repairable else found


def find_invalid(value: Any, where: str, repairable: bool = True) -> str | None:
    """The message for the first string in a JSON-like value (keys included) UTF-8 cannot encode, or None."""
    if isinstance(value, str):
        position = first_invalid(value)
        return None if position is None else invalid_message(where, value, position, repairable)
    if isinstance(value, dict):
        return _find_invalid_in_mapping(value, where, repairable)
    if isinstance(value, (list, tuple)):
        return next((found for i, item in enumerate(value)
                     if (found := find_invalid(item, f"{where}[{i}]", repairable)) is not None), None)
    return None


def _find_invalid_in_mapping(value: dict, where: str, repairable: bool) -> str | None:
    for key, item in value.items():
        found = (find_invalid(key, f"a key of {where}", repairable)
                 or find_invalid(item, f"{where}.{quoted(str(key))}", repairable))
        if found is not None:
            return found
    return None


def repaired_value(value: Any) -> Any:
    """A JSON-like value with every string in it, keys included, `repaired`."""
    if isinstance(value, str):
        return repaired(value)
    if isinstance(value, dict):
        return {repaired_value(key): repaired_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(repaired_value(item) for item in value)
    return value
