"""What the audit needs from written samples: the tags after each stage, and their agreement with a truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

STAGES = ("parsed", "generated", "cleaned")


def stage_tags(sample: dict) -> dict[str, set[str]]:
    """A written sample's tags after each stage: the captions' tags, plus the tagger's, minus the drops."""
    sources = sample.get("tag_sources", {})
    parsed = {tag for tag, entries in sources.items() if any(e.get("source") == "parsed" for e in entries)}
    return {"parsed": parsed, "generated": set(sources), "cleaned": set(sample.get("tags", []))}


def read_truth(path: str | Path) -> dict[str, set[str]]:
    """truth.jsonl: one {"key": id, "tags": [...]} per line."""
    truth = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    item = json.loads(line)
                    truth[str(item["key"])] = set(item["tags"])
                except (ValueError, KeyError, TypeError):
                    raise ValueError(f"{path}:{number} is not a {{\"key\", \"tags\"}} JSON line") from None
    return truth


def truth_metrics(samples: Iterable[dict], truth: dict[str, set[str]]) -> dict[str, dict[str, float]]:
    """Micro precision, recall and F1 of each stage's tags over the samples the truth knows."""
    from sklearn.metrics import precision_recall_fscore_support
    from sklearn.preprocessing import MultiLabelBinarizer

    known = [s for s in samples if s["id"] in truth]
    if not known:
        return {}
    labels = sorted(set().union(*truth.values(), *(set(s.get("tag_sources", {})) for s in known)))
    binarizer = MultiLabelBinarizer(classes=labels).fit([labels])
    expected = binarizer.transform([truth[s["id"]] for s in known])
    metrics = {}
    for stage in STAGES:
        found = binarizer.transform([stage_tags(s)[stage] for s in known])
        precision, recall, f1, _ = precision_recall_fscore_support(expected, found, average="micro", zero_division=0)
        metrics[stage] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                          "f1": round(float(f1), 4), "samples": len(known)}
    return metrics
