"""The audit report's figures, computed from a run's written outputs (shards, run.json, cleaning statistics).

`build_report(OUT)` reads only what the run wrote, so `tagmill report OUT` rebuilds it at any time.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq

from tagmill.engine.report.audit import STAGES, TruthCounts, read_truth, stage_tags

REPORT_JSON = "report.json"
SCORE_KINDS = ("tagger", "clip", "outlier")
SCORE_RANGES = {"tagger": (0.0, 1.0), "clip": (-1.0, 1.0), "outlier": (0.0, 2.0)}  # probability, cosine, distance
HISTOGRAM_BINS = 40
EXAMPLE_TAGS = 6  # the most-dropped tags shown with example samples
EXAMPLES_PER_TAG = 4


def read_samples(shards_dir: Path) -> Iterator[dict]:
    """Every written sample as a dict in the shape of the shards' per-sample JSON, with its shard."""
    for path in sorted(shards_dir.glob("*.parquet")):
        present = set(pq.read_schema(path).names)  # outputs of schema 1 have no scores or drops
        columns = [c for c in ("id", "tags", "tag_sources", "tag_scores", "dropped") if c in present]
        for row in pq.read_table(path, columns=columns).to_pylist():
            row.setdefault("tag_scores", [])
            row.setdefault("dropped", [])
            sources: dict[str, list[dict]] = defaultdict(list)
            for entry in row["tag_sources"]:
                sources[entry["tag"]].append({"source": entry["source"], "score": entry["score"]})
            yield {"id": row["id"], "shard": path.stem, "tags": row["tags"], "tag_sources": dict(sources),
                   "scores": {s["tag"]: {k: s[k] for k in SCORE_KINDS if s[k] is not None} for s in row["tag_scores"]},
                   "dropped": {d["tag"]: {"rule": d["rule"], "score": d["score"], "threshold": d["threshold"]}
                               for d in row["dropped"]}}


def build_report(out: str | Path, truth: str | Path | None = None) -> dict:
    """The report's data, gathered in one pass over the shards; also written to OUT/report.json."""
    out = Path(out)
    if not (out / "shards").is_dir():
        raise ValueError(f"{out} has no shards/ folder: not the output of `tagmill run`")
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    figures = _Figures(read_truth(truth) if truth else None)
    for sample in read_samples(out / "shards"):
        figures.add(sample)
    thresholds = _thresholds(out)
    report = {"samples": figures.samples, "counts": run.get("counts", {}),
              "conservation": run.get("conservation", {}), "stages": run.get("config", {}).get("stages", []),
              **figures.result(thresholds), "thresholds": thresholds}
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


class _Figures:
    """Everything the report counts, accumulated sample by sample: memory grows with tags, not samples."""

    def __init__(self, truth: dict[str, set[str]] | None):
        self.samples = 0
        self.stage_totals = Counter()
        self.drops_by_rule = Counter()
        self.per_tag: dict[str, dict] = defaultdict(lambda: {"parsed": 0, "generated": 0, "both": 0,
                                                             "dropped": Counter(), "kept": 0})
        self.histograms: dict[str, dict[str, np.ndarray]] = defaultdict(_empty_histograms)  # per tag, "kind:part"
        self.examples: dict[str, list[dict]] = defaultdict(list)  # the first few samples that lost each tag
        self.truth = TruthCounts(truth) if truth is not None else None

    def add(self, sample: dict) -> None:
        self.samples += 1
        stages = stage_tags(sample)
        for stage, tags in stages.items():
            self.stage_totals[stage] += len(tags)
        for tag, entries in sample["tag_sources"].items():
            self._count_tag(sample, tag, {e["source"] for e in entries})
        for tag, scores in sample["scores"].items():
            part = "dropped" if tag in sample["dropped"] else "kept"
            for kind, value in scores.items():
                self.histograms[tag][f"{kind}:{part}"][_bin(kind, value)] += 1
        if self.truth is not None:
            self.truth.add(sample["id"], stages)

    def _count_tag(self, sample: dict, tag: str, kinds: set[str]) -> None:
        row = self.per_tag[tag]
        row["parsed"] += "parsed" in kinds
        row["generated"] += "generated" in kinds
        row["both"] += kinds >= {"parsed", "generated"}
        drop = sample["dropped"].get(tag)
        if drop is None:
            row["kept"] += 1
            return
        row["dropped"][drop["rule"]] += 1
        self.drops_by_rule[drop["rule"]] += 1
        if len(self.examples[tag]) < EXAMPLES_PER_TAG:
            self.examples[tag].append({"id": sample["id"], "shard": sample["shard"], "kept": sample["tags"],
                                       "dropped": sample["dropped"]})

    def result(self, thresholds: dict) -> dict:
        per_tag = sorted(({"tag": tag, **row, "dropped": dict(row["dropped"]),
                           "dropped_total": sum(row["dropped"].values())} for tag, row in self.per_tag.items()),
                         key=lambda r: (-r["dropped_total"], r["tag"]))
        most_dropped = [row for row in per_tag if row["dropped_total"]][:EXAMPLE_TAGS]
        found = {
            "tags_per_sample": {stage: round(self.stage_totals[stage] / max(self.samples, 1), 4) for stage in STAGES},
            "drops_by_rule": dict(self.drops_by_rule),
            "per_tag": per_tag,
            "score_histograms": _histogram_json(_summed(self.histograms.values())),
            "examples": [{"tag": row["tag"], "dropped": row["dropped_total"], "samples": self.examples[row["tag"]],
                          "histograms": _histogram_json(self.histograms[row["tag"]]),
                          "thresholds": thresholds.get(row["tag"], {})} for row in most_dropped],
        }
        if self.truth is not None:
            found["truth_metrics"] = self.truth.metrics()
        return found


def _empty_histograms() -> dict[str, np.ndarray]:
    return defaultdict(lambda: np.zeros(HISTOGRAM_BINS, dtype=np.int64))


def _summed(histograms) -> dict[str, np.ndarray]:
    total = _empty_histograms()
    for per_tag in histograms:
        for key, counts in per_tag.items():
            total[key] += counts
    return total


def _bin(kind: str, value: float) -> int:
    """The bin of a score on its kind's fixed range (values outside go to the end bins)."""
    low, high = SCORE_RANGES[kind]
    return min(max(int((value - low) / (high - low) * HISTOGRAM_BINS), 0), HISTOGRAM_BINS - 1)


def _histogram_json(histograms: dict[str, np.ndarray]) -> dict[str, dict]:
    """Per score kind with any value: bin edges and the kept and dropped counts."""
    result = {}
    for kind in SCORE_KINDS:
        kept, dropped = histograms.get(f"{kind}:kept"), histograms.get(f"{kind}:dropped")
        if kept is None and dropped is None:
            continue
        empty = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        low, high = SCORE_RANGES[kind]
        result[kind] = {"edges": [round(float(e), 5) for e in np.linspace(low, high, HISTOGRAM_BINS + 1)],
                        "kept": (empty if kept is None else kept).tolist(),
                        "dropped": (empty if dropped is None else dropped).tolist()}
    return result


def _thresholds(out: Path) -> dict[str, dict]:
    """The cleaning statistics per tag (similarity threshold, outlier cutoff), when the run cleaned."""
    path = out / "clean_statistics.npz"
    if not path.is_file():
        return {}
    from tagmill.engine.clean import load_statistics

    return {tag: stats.to_json() for tag, stats in sorted(load_statistics(path).items())}
