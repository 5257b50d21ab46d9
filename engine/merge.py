"""Merging a tagger's predictions into a record's tags: what it generated, and its score for every candidate.

A model's tags need not be the run's: an imported RAM model has its own 4,585. `match_tags` maps the
run's vocabulary onto the model's tags by name and then by the run's synonyms, and says which tags
are on one side only, so a run can report what its generator cannot see and what it never uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from tagmill.engine.records import Record, TagSource


class VocabularyMismatch(ValueError):
    """A model that scores none of the run's tags."""


@dataclass
class TagMatch:
    """The run's tags found among a model's, and what is left over on either side."""

    columns: dict[str, int]  # run tag -> the model's column that scores it, in vocabulary order
    by_synonym: dict[str, str] = field(default_factory=dict)  # run tag -> the model tag found through a synonym
    model_only: list[str] = field(default_factory=list)  # model tags no run tag maps to: never generated
    vocabulary_only: list[str] = field(default_factory=list)  # run tags the model does not score

    def report(self) -> dict:
        """What run.json says about the mapping."""
        return {"matched": len(self.columns), "matched_by_synonym": dict(sorted(self.by_synonym.items())),
                "model_only": self.model_only, "vocabulary_only": self.vocabulary_only}


def _normal(name: str) -> str:
    return " ".join(name.casefold().replace("_", " ").split())


def match_tags(model_tags: Sequence[str], vocabulary: Sequence[str],
               synonyms: Mapping[str, Sequence[str]] | None = None) -> TagMatch:
    """Each run tag's model column: the model tag of the same name (case and spacing aside) first,
    then the first of the run tag's synonyms the model has. A model column serves one run tag."""
    index: dict[str, int] = {}
    for column, tag in enumerate(model_tags):
        index.setdefault(_normal(tag), column)
    columns: dict[str, int] = {}
    taken: set[int] = set()
    for tag in vocabulary:
        found = _first_free(index, (tag,), taken)
        if found is not None:
            columns[tag] = found
            taken.add(found)
    by_synonym = {}
    for tag in (t for t in vocabulary if t not in columns):
        found = _first_free(index, (synonyms or {}).get(tag, ()), taken)
        if found is not None:
            columns[tag], by_synonym[tag] = found, model_tags[found]
            taken.add(found)
    ordered = {tag: columns[tag] for tag in vocabulary if tag in columns}
    return TagMatch(ordered, by_synonym, [t for i, t in enumerate(model_tags) if i not in taken],
                    [t for t in vocabulary if t not in columns])


def _first_free(index: dict[str, int], forms: Sequence[str], taken: set[int]) -> int | None:
    """The column of the first surface form the model has and no other run tag took."""
    return next((index[_normal(f)] for f in forms if _normal(f) in index and index[_normal(f)] not in taken), None)


class GeneratedTags:
    """The model's tags that the run's vocabulary maps onto, under the run's names, with their generation
    thresholds: the tagger's own, raised by `margin` (a tag no caption names needs more evidence than
    one a caption names)."""

    def __init__(self, model_tags: list[str], thresholds: np.ndarray, vocabulary: list[str], margin: float = 0.0,
                 synonyms: Mapping[str, Sequence[str]] | None = None):
        self.match = match_tags(model_tags, vocabulary, synonyms)
        if not self.match.columns:
            raise VocabularyMismatch(f"the tagger's {len(model_tags)} tags share none with the run's vocabulary "
                                     f"of {len(vocabulary)} (e.g. {model_tags[:3]} vs {vocabulary[:3]})")
        self.tags = list(self.match.columns)
        self.columns = np.array(list(self.match.columns.values()), dtype=np.int64)
        self.column = dict(self.match.columns)
        self.model_thresholds = np.asarray(thresholds, dtype=np.float32)[self.columns]
        self.thresholds = self.model_thresholds + np.float32(margin)
        self.unknown = sorted(self.match.model_only)  # never generated

    def tagger_thresholds(self) -> dict[str, float]:
        """Each mapped run tag's threshold in the model, without the margin (the no-support rule's yardstick)."""
        return {tag: float(t) for tag, t in zip(self.tags, self.model_thresholds)}

    def merge(self, record: Record, scores: np.ndarray) -> int:
        """Add each tag scoring at or above its generation threshold as generated; score every candidate. Returns
        how many tags were generated."""
        usable = scores[self.columns]
        generated = [self.tags[i] for i in np.flatnonzero(usable >= self.thresholds)]
        record.tags.extend(TagSource(tag, "generated", score=float(scores[self.column[tag]])) for tag in generated)
        for tag in record.candidate_tags():
            if tag in self.column:
                record.score(tag, "tagger", scores[self.column[tag]])
        return len(generated)
