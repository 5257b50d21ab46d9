"""People's verdicts on sampled tag decisions: OUT/audit/judgments.jsonl, append-only.

Each line is `{"sample", "tag", "verdict", "reviewer", "time"}`, verdict `right`, `wrong` or `unsure`. Lines are
only ever appended, each flushed to disk before the reviewer is told it is saved, so a killed server loses no
answer it acknowledged. A reviewer who answers an item again (after stepping back with undo) adds a line; the
latest line of each reviewer on an item is that reviewer's verdict.

An output on object storage cannot append: there each answer reads the log as it is now and writes
it back whole with the answer added, before the reviewer is told it is saved. Another server's answer
written between that read and that write would be lost, so run one review server at a time on such
an output; a local log takes several at once.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

from tagmill.engine import storage

JUDGMENTS_JSONL = "judgments.jsonl"
VERDICTS = ("right", "wrong", "unsure")
REVIEWER = re.compile(r"[\w.@+ -]{1,64}")
MAX_FIELD_CHARS = 1000


class JudgmentError(ValueError):
    """An answer that is not a valid judgment."""


def judgment(sample: str, tag: str, verdict: str, reviewer: str, time: str | None = None) -> dict:
    """A validated judgment line; `time` defaults to now, in UTC."""
    for name, value in (("sample", sample), ("tag", tag)):
        if not isinstance(value, str) or not value or len(value) > MAX_FIELD_CHARS:
            raise JudgmentError(f"{name} must be a non-empty string of at most {MAX_FIELD_CHARS} characters")
    if verdict not in VERDICTS:
        raise JudgmentError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
    if not isinstance(reviewer, str) or not REVIEWER.fullmatch(reviewer):
        raise JudgmentError("reviewer must be 1 to 64 letters, digits, spaces or . @ + - _")
    time = time or datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"sample": sample, "tag": tag, "verdict": verdict, "reviewer": reviewer, "time": time}


class JudgmentLog:
    """judgments.jsonl opened for appending; every line is stored when `append` returns."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if not storage.is_url(self.path):
            storage.makedirs(storage.parent(self.path))
            self._end_torn_line()

    def append(self, line: dict) -> None:
        self.extend([line])

    def extend(self, lines: list[dict]) -> None:
        """Append judgments (already validated by `judgment`) and wait until they are stored."""
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
        if storage.is_url(self.path):
            stored = storage.read_bytes(self.path) if storage.is_file(self.path) else b""
            storage.write_bytes(self.path, _ended(stored) + text)
            return
        with open(self.path, "ab") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())

    def _end_torn_line(self) -> None:
        """A process killed mid-write can leave a last line without its newline: end it, so it stays alone."""
        if not os.path.isfile(self.path) or os.path.getsize(self.path) == 0:
            return
        with open(self.path, "rb+") as file:
            file.seek(-1, os.SEEK_END)
            if file.read(1) != b"\n":
                file.write(b"\n")


def _ended(log: bytes) -> bytes:
    return log if not log or log.endswith(b"\n") else log + b"\n"


def read_judgments(path: str | Path) -> list[dict]:
    """Every valid judgment line of the file, in order; a torn or foreign line is skipped."""
    if not storage.is_file(path):
        return []
    lines = storage.read_bytes(path).decode("utf-8", errors="replace").split("\n")  # not splitlines: U+2028 is text
    return [parsed for parsed in map(_parsed, lines) if parsed is not None]


def _parsed(line: str) -> dict | None:
    try:
        fields = json.loads(line)
        return judgment(fields["sample"], fields["tag"], fields["verdict"], fields["reviewer"], fields["time"])
    except (ValueError, KeyError, TypeError):
        return None


def latest_verdicts(judgments: list[dict]) -> dict[tuple[str, str], dict[str, str]]:
    """Per (sample, tag), each reviewer's latest verdict."""
    verdicts: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for line in judgments:
        verdicts[(line["sample"], line["tag"])][line["reviewer"]] = line["verdict"]
    return dict(verdicts)


def consensus(by_reviewer: dict[str, str]) -> str:
    """One verdict for an item: the majority of its reviewers' right and wrong; `unsure` when none said either,
    `disputed` when they split evenly. Both are counted and left out of the estimates."""
    votes = Counter(verdict for verdict in by_reviewer.values() if verdict != "unsure")
    if not votes:
        return "unsure"
    if votes["right"] == votes["wrong"]:
        return "disputed"
    return "right" if votes["right"] > votes["wrong"] else "wrong"
