"""What the audit needs from written samples: the tags after each stage, and their agreement with a truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tagmill.engine import storage

STAGES = ("parsed", "generated", "cleaned")


def stage_tags(sample: dict) -> dict[str, set[str]]:
    """A written sample's tags after each stage: the captions' tags, plus the tagger's, minus the drops."""
    sources = sample.get("tag_sources", {})
    parsed = {tag for tag, entries in sources.items() if any(e.get("source") == "parsed" for e in entries)}
    return {"parsed": parsed, "generated": set(sources), "cleaned": set(sample.get("tags", []))}


def read_truth(path: str | Path) -> dict[str, set[str]]:
    """truth.jsonl: one {"key": id, "tags": [...]} per line."""
    truth = {}
    for number, line in enumerate(storage.read_text(path).splitlines(), 1):
        if line.strip():
            try:
                item = json.loads(line)
                truth[str(item["key"])] = set(item["tags"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}:{number} is not a {{\"key\", \"tags\"}} JSON line") from None
    return truth


class TruthCounts:
    """Micro precision, recall and F1 of each stage's tags, counted sample by sample against a truth."""

    def __init__(self, truth: dict[str, set[str]]):
        self.truth = truth
        self.counts = {stage: Counter() for stage in STAGES}
        self.samples = 0

    def add(self, sample_id: str, stages: dict[str, set[str]]) -> None:
        """Count one sample's tags after each stage (as `stage_tags` gives them)."""
        expected = self.truth.get(sample_id)
        if expected is None:
            return
        self.samples += 1
        for stage, found in stages.items():
            counts = self.counts[stage]
            counts["true_positive"] += len(found & expected)
            counts["false_positive"] += len(found - expected)
            counts["false_negative"] += len(expected - found)

    def metrics(self) -> dict[str, dict[str, float]]:
        if not self.samples:
            return {}
        return {stage: {**_micro(counts), "samples": self.samples} for stage, counts in self.counts.items()}


def _micro(counts: Counter) -> dict[str, float]:
    true_positive = counts["true_positive"]
    precision = true_positive / max(true_positive + counts["false_positive"], 1)
    recall = true_positive / max(true_positive + counts["false_negative"], 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}
