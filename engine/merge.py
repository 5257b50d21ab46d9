"""Merging a tagger's predictions into a record's tags: what it generated, and its score for every candidate."""

from __future__ import annotations

import numpy as np

from tagmill.engine.records import Record, TagSource


class VocabularyMismatch(ValueError):
    """A model that scores none of the run's tags."""


class GeneratedTags:
    """The model's tags that belong to the run's vocabulary, with their generation thresholds: the
    tagger's own, raised by `margin` (a tag no caption names needs more evidence than one a caption names)."""

    def __init__(self, model_tags: list[str], thresholds: np.ndarray, vocabulary: list[str], margin: float = 0.0):
        known = set(vocabulary)
        self.columns = np.array([i for i, tag in enumerate(model_tags) if tag in known], dtype=np.int64)
        if not len(self.columns):
            raise VocabularyMismatch(f"the tagger's {len(model_tags)} tags share none with the run's vocabulary "
                                     f"of {len(vocabulary)} (e.g. {model_tags[:3]} vs {vocabulary[:3]})")
        self.tags = [model_tags[i] for i in self.columns]
        self.column = {tag: i for i, tag in zip(self.columns, self.tags)}
        self.thresholds = np.asarray(thresholds, dtype=np.float32)[self.columns] + np.float32(margin)
        self.unknown = sorted(set(model_tags) - known)  # never generated

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
