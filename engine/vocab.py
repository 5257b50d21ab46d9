"""Tag vocabularies: RAM-format tag lists, synonyms, and the `vocab.json` every stage shares."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from tagmill.engine import storage

VOCAB_FORMAT_VERSION = 1
CATEGORIES = ("object", "scene", "attribute", "action")
OBJECT, SCENE, ATTRIBUTE, ACTION = CATEGORIES
COLOUR_TERMS = frozenset({
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray",
    "grey", "silver", "gold", "beige", "violet", "turquoise", "maroon", "navy", "teal", "tan",
})


class VocabularyError(ValueError):
    """A tag list, synonyms file or vocab.json that cannot be used."""


@dataclass(frozen=True)
class Vocabulary:
    """Canonical tags (position = class index) and the surface forms that mean each of them."""

    tags: tuple[str, ...]
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    categories: Mapping[str, str] = field(default_factory=dict)  # tag -> object/scene/attribute/action
    source: str = "given"  # "given" or "mined"

    def __post_init__(self) -> None:
        if not self.tags:
            raise VocabularyError("the vocabulary has no tags")
        seen: set[str] = set()
        for tag in self.tags:
            if not isinstance(tag, str) or not tag.strip():
                raise VocabularyError(f"invalid tag {tag!r}")
            if tag in seen:
                raise VocabularyError(f"tag {tag!r} is listed twice")
            seen.add(tag)
        unknown = sorted(set(self.synonyms) - seen)
        if unknown:
            raise VocabularyError(f"synonyms name tags that are not in the vocabulary: {unknown[:5]}")
        strays = sorted(set(self.categories) - seen)
        if strays:
            raise VocabularyError(f"categories name tags that are not in the vocabulary: {strays[:5]}")
        bad = sorted({str(c) for c in self.categories.values() if c not in CATEGORIES})
        if bad:
            raise VocabularyError(f"unknown tag categories {bad}; use {', '.join(CATEGORIES)}")

    def __len__(self) -> int:
        return len(self.tags)

    def index(self) -> dict[str, int]:
        return {tag: i for i, tag in enumerate(self.tags)}

    def category(self, tag: str) -> str | None:
        """The tag's category when given, else "attribute" for colour words, else unknown (None)."""
        given = self.categories.get(tag)
        if given is not None:
            return given
        return ATTRIBUTE if tag.lower() in COLOUR_TERMS else None

    def surface_forms(self, tag: str) -> tuple[str, ...]:
        """The tag itself first, then its synonyms, without repeats."""
        return tuple(dict.fromkeys((tag, *self.synonyms.get(tag, ()))))

    # ---- files ---------------------------------------------------------------------------
    @classmethod
    def from_files(cls, tag_list: str | Path, synonyms: str | Path | None = None) -> "Vocabulary":
        """A RAM-format tag list (or a vocab.json) plus an optional synonyms JSON."""
        if str(tag_list).endswith(".json"):
            vocab = cls.load(tag_list)
            return vocab if synonyms is None else vocab.with_synonyms(read_synonyms(synonyms))
        tags = read_tag_list(tag_list)
        return _in_file(tag_list, lambda: cls(tags=tags, synonyms=read_synonyms(synonyms) if synonyms else {}))

    def with_synonyms(self, synonyms: Mapping[str, tuple[str, ...]]) -> "Vocabulary":
        merged = {t: tuple(dict.fromkeys((*self.synonyms.get(t, ()), *synonyms.get(t, ()))))
                  for t in sorted({*self.synonyms, *synonyms})}
        return Vocabulary(self.tags, merged, self.categories, self.source)

    def to_json(self) -> dict:
        return {
            "version": VOCAB_FORMAT_VERSION,
            "source": self.source,
            "tags": list(self.tags),
            "synonyms": {t: list(forms) for t, forms in sorted(self.synonyms.items())},
            "categories": dict(sorted(self.categories.items())),
        }

    def save(self, path: str | Path) -> None:
        storage.write_text(path, json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        return cls.from_json(_read_json(path), str(path))

    @classmethod
    def from_json(cls, data: object, where: str = "vocab.json") -> "Vocabulary":
        if not isinstance(data, dict) or not isinstance(data.get("tags"), list):
            raise VocabularyError(f"{where}: not a tagmill vocab.json (no 'tags' list)")
        version, categories = data.get("version", VOCAB_FORMAT_VERSION), data.get("categories", {})
        if not isinstance(version, int) or version > VOCAB_FORMAT_VERSION:
            raise VocabularyError(f"{where}: vocab format {version!r} is not one this tagmill reads")
        if not isinstance(categories, dict):
            raise VocabularyError(f"{where}: 'categories' must map tags to categories")
        return _in_file(where, lambda: cls(tags=tuple(data["tags"]),
                                           synonyms=_validate_synonyms(data.get("synonyms", {}), where),
                                           categories=dict(categories), source=str(data.get("source", "given"))))


def _in_file(where: str | Path, build):
    """Build a vocabulary, naming the file in any error it raises."""
    try:
        return build()
    except VocabularyError as err:
        message = str(err)
        raise VocabularyError(message if message.startswith(str(where)) else f"{where}: {message}") from None


def read_tag_list(path: str | Path) -> tuple[str, ...]:
    """RAM's format: one tag per line, line number = class index; blank lines are not allowed inside."""
    try:
        lines = storage.read_text(path).splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise VocabularyError(f"cannot read tag list {path}: {err}") from err
    while lines and not lines[-1].strip():
        lines.pop()
    tags = tuple(line.strip() for line in lines)
    for number, tag in enumerate(tags, start=1):
        if not tag:
            raise VocabularyError(f"{path}:{number}: empty tag line (line numbers are class indices)")
    return tags


def read_synonyms(path: str | Path) -> dict[str, tuple[str, ...]]:
    """JSON `{"canonical tag": ["surface form", ...]}`."""
    return _validate_synonyms(_read_json(path), path)


def _validate_synonyms(data: object, path: str | Path) -> dict[str, tuple[str, ...]]:
    if not isinstance(data, dict):
        raise VocabularyError(f"{path}: synonyms must be a JSON object of tag -> list of surface forms")
    synonyms = {}
    for tag, forms in data.items():
        if not isinstance(forms, list) or not all(isinstance(f, str) and f.strip() for f in forms):
            raise VocabularyError(f"{path}: synonyms of {tag!r} must be a list of non-empty strings")
        synonyms[tag] = tuple(f.strip() for f in forms)
    return synonyms


def _read_json(path: str | Path) -> object:
    try:
        return json.loads(storage.read_text(path))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VocabularyError(f"cannot read {path}: {err}") from err
