"""The one record that flows through every stage, and the reasons a record can be rejected."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tagmill.engine.text import first_invalid, invalid_message


class Reject:
    """Reasons an input record cannot be used. Each rejected record keeps one, plus a message."""

    ID_MISSING = "id_missing"
    ID_UNSAFE = "id_unsafe"
    ID_DUPLICATE = "id_duplicate"
    PATH_UNSAFE = "path_unsafe"
    LINE_INVALID = "manifest_line_invalid"
    IMAGE_MISSING = "image_missing"
    IMAGE_EMPTY = "image_empty"
    IMAGE_CORRUPT = "image_corrupt"
    NOT_AN_IMAGE = "not_an_image"
    IMAGE_TOO_LARGE = "image_too_large"
    CAPTION_MISSING = "caption_missing"
    CAPTION_EMPTY = "caption_empty"
    CAPTION_NOT_STRING = "caption_not_string"
    CAPTION_NOT_UTF8 = "caption_not_utf8"
    CAPTION_TOO_LONG = "caption_too_long"
    TEXT_NOT_UTF8 = "text_not_utf8"  # an id, image path, metadata key or value, or tar member name
    MEMBER_UNEXPECTED = "member_unexpected"
    TAR_CORRUPT = "tar_corrupt"
    INFERENCE_FAILED = "inference_failed"


class RecordError(ValueError):
    """Raised by a check; the record becomes a reject with this reason and message."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(slots=True)
class TagSource:
    """Where one tag of a sample came from: a stage, and what that stage saw."""

    tag: str
    source: str  # "parsed" or "generated"
    caption: int = -1  # which caption, for parsed tags
    text: str = ""  # the words that named it
    score: float | None = None


@dataclass(slots=True)
class Record:
    """One input sample on its way through the pipeline; a reject carries its reason instead of output."""

    id: str
    source: str  # where it came from: "shard.tar", "manifest.jsonl:12"
    shard: int  # output shard index
    index: int  # position in the shard; orders the shard's output
    image: bytes | None = None
    image_ext: str = ""  # the original file extension, without the dot
    captions: list[str] = field(default_factory=list)
    generated_caption: str = ""  # written by the tagger's caption head, when the run asks for it
    meta: dict[str, Any] = field(default_factory=dict)  # the input's own per-sample JSON
    width: int = 0
    height: int = 0
    image_format: str = ""
    tags: list[TagSource] = field(default_factory=list)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # tag -> {"tagger"|"clip"|"outlier": score}
    dropped: dict[str, dict[str, Any]] = field(default_factory=dict)  # tag -> {"rule", "score", "threshold"}
    reject_reason: str = ""
    reject_message: str = ""

    @property
    def rejected(self) -> bool:
        return bool(self.reject_reason)

    def reject(self, reason: str, message: str) -> "Record":
        self.reject_reason, self.reject_message = reason, message
        self.image = None  # a reject keeps no payload
        return self

    def candidate_tags(self) -> list[str]:
        """Every tag some stage proposed, kept or dropped."""
        return sorted({t.tag for t in self.tags})

    def tag_names(self) -> list[str]:
        """The final tags: proposed and not dropped."""
        return [tag for tag in self.candidate_tags() if tag not in self.dropped]

    def score(self, tag: str, kind: str, value: float) -> None:
        self.scores.setdefault(tag, {})[kind] = float(value)


# An id becomes a tar member name: no separators, no dots (webdataset splits keys at the first dot),
# no control characters, nothing that could name a path outside the output.
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-+=@,:;#%~()\[\]{}' ]{1,200}$")


def check_name_text(text: str, where: str) -> str:
    """A name given in the input (an id, an image path) when it is valid UTF-8 text; never repaired, since a
    repaired name names nothing."""
    position = first_invalid(text)
    if position is not None:
        raise RecordError(Reject.TEXT_NOT_UTF8, invalid_message(where, text, position, repairable=False))
    return text


def check_id(value: object) -> str:
    """The sample id as a string, or a RecordError saying why it cannot name output files."""
    if value is None or value == "":
        raise RecordError(Reject.ID_MISSING, "the sample has no id")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(Reject.ID_UNSAFE, f"id must be a string or an integer, not {type(value).__name__}")
    text = check_name_text(str(value), "the id")
    if not _SAFE_ID.match(text) or text.strip() != text:
        raise RecordError(Reject.ID_UNSAFE, f"id {text[:80]!r} cannot name an output file (use letters, digits, "
                                            "'_' or '-'; no '/', '.', or control characters)")
    return text
