"""The audit report's figures, computed from a run's written outputs (shards, run.json, cleaning statistics).

`build_report(OUT)` reads only what the run wrote, so `tagmill report OUT` rebuilds it at any time.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq

from tagmill.engine import storage
from tagmill.engine.images import image_place
from tagmill.engine.report.audit import STAGES, TruthCounts, read_truth, stage_tags
from tagmill.engine.schema import IMAGE_PLACE_COLUMNS

REPORT_JSON = "report.json"
SCORE_KINDS = ("tagger", "clip", "outlier")
SCORE_RANGES = {"tagger": (0.0, 1.0), "clip": (-1.0, 1.0), "outlier": (0.0, 2.0)}  # probability, cosine, distance
HISTOGRAM_BINS = 40
EXAMPLE_TAGS = 6  # the most-dropped tags shown with example samples
EXAMPLES_PER_TAG = 4
BROWSE_EXAMPLES = 12  # per tag, kept and dropped each: the examples the report's tag browser pages through
CAPTION_CHARS = 200


def read_samples(shards_dir: str, extra: tuple[str, ...] = ()) -> Iterator[dict]:
    """Every written sample as a dict in the shape of the shards' per-sample JSON, with its shard.

    `extra` names more Parquet columns to pass through as they are (`captions`, say).
    """
    for path in storage.glob(storage.join(shards_dir, "*.parquet")):
        with storage.open_file(path) as stream:
            table = pq.ParquetFile(stream)
            present = set(table.schema_arrow.names)  # outputs of schema 1 have no scores or drops
            columns = [c for c in ("id", "tags", "tag_sources", "tag_scores", "dropped", *IMAGE_PLACE_COLUMNS, *extra)
                       if c in present]
            rows = table.read(columns=columns).to_pylist()
        shard = storage.name(path).removesuffix(".parquet")
        for row in rows:
            row.setdefault("tag_scores", [])
            row.setdefault("dropped", [])
            sources: dict[str, list[dict]] = defaultdict(list)
            for entry in row["tag_sources"]:
                sources[entry["tag"]].append({"source": entry["source"], "score": entry["score"]})
            yield {"id": row["id"], "shard": shard, "tags": row["tags"], "tag_sources": dict(sources),
                   "scores": {s["tag"]: {k: s[k] for k in SCORE_KINDS if s[k] is not None} for s in row["tag_scores"]},
                   "dropped": {d["tag"]: {"rule": d["rule"], "score": d["score"], "threshold": d["threshold"]}
                               for d in row["dropped"]},
                   "image": image_place(row.get("image_offset"), row.get("image_size")),
                   **{column: row.get(column) for column in extra}}


def build_report(out: str, truth: str | None = None) -> dict:
    """The report's data, gathered in one pass over the shards; also written to OUT/report.json."""
    if not storage.is_dir(storage.join(out, "shards")):
        raise ValueError(f"{out} has no shards/ folder: not the output of `tagmill run`")
    run_json = storage.join(out, "run.json")
    run = json.loads(storage.read_text(run_json)) if storage.is_file(run_json) else {}
    figures = _Figures(read_truth(truth) if truth else None)
    for sample in read_samples(storage.join(out, "shards"), extra=("captions",)):
        figures.add(sample)
    thresholds = _thresholds(out)
    report = {"samples": figures.samples, "counts": run.get("counts", {}),
              "conservation": run.get("conservation", {}), "stages": run.get("config", {}).get("stages", []),
              **figures.result(thresholds), "thresholds": thresholds}
    human = _human_estimates(out)
    if human is not None:
        report["human_estimates"] = human
    storage.write_text(storage.join(out, REPORT_JSON), json.dumps(report, indent=1) + "\n")
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
        self.browse = _TagExamples()
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
        self.browse.add(sample)

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
            self.examples[tag].append({"id": sample["id"], "shard": sample["shard"], "image": sample["image"],
                                       "kept": sample["tags"], "dropped": sample["dropped"]})

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
        return {**found, **self.browse.result()}


class _TagExamples:
    """Per tag, up to BROWSE_EXAMPLES samples that kept it and as many that dropped it, chosen at random.

    Every tag ranks samples by the same hash of their id, so the examples of different tags share samples
    and the page embeds fewer images than it shows examples.
    """

    def __init__(self):
        self.chosen: dict[tuple[str, str], list] = defaultdict(list)  # (tag, "kept"|"dropped"): heap

    def add(self, sample: dict) -> None:
        order = -_sample_rank(sample["id"])
        entry = None
        for tag in sample["tag_sources"]:
            heap = self.chosen[(tag, "dropped" if tag in sample["dropped"] else "kept")]
            if len(heap) < BROWSE_EXAMPLES or (order, sample["id"]) > heap[0][:2]:
                entry = entry or (order, sample["id"], _example(sample))
                (heapq.heappush if len(heap) < BROWSE_EXAMPLES else heapq.heapreplace)(heap, entry)

    def result(self) -> dict:
        examples: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"kept": [], "dropped": []})
        samples = {}
        for (tag, part), heap in sorted(self.chosen.items()):
            for _, sample_id, example in sorted(heap, reverse=True):
                examples[tag][part].append(sample_id)
                samples[sample_id] = example
        return {"tag_examples": dict(examples), "example_samples": dict(sorted(samples.items()))}


def _sample_rank(sample_id: str) -> int:
    return int.from_bytes(hashlib.sha256(sample_id.encode("utf-8", "surrogatepass")).digest()[:8], "big")


def _example(sample: dict) -> dict:
    """What the tag browser shows of a sample: its caption, kept tags, drops with reasons, and scores."""
    captions = sample.get("captions") or []
    return {"shard": sample["shard"], "image": sample["image"], "caption": captions[0][:CAPTION_CHARS] if captions else "",
            "kept": sample["tags"], "sources": {tag: sorted({e["source"] for e in entries})
                                                for tag, entries in sample["tag_sources"].items()},
            "dropped": {tag: {**drop, "score": _short(drop["score"]), "threshold": _short(drop["threshold"])}
                        for tag, drop in sample["dropped"].items()},
            "scores": {tag: {kind: _short(value) for kind, value in scores.items()}
                       for tag, scores in sample["scores"].items()}}


def _short(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


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


def _human_estimates(out: Path) -> dict | None:
    """The figures people's judgments give (`tagmill audit`), when there are any."""
    from tagmill.engine.report.judgments import JUDGMENTS_JSONL
    from tagmill.engine.report.review import audit_dir

    if not storage.is_file(storage.join(audit_dir(out), JUDGMENTS_JSONL)):
        return None  # and statistics' libraries are not imported
    from tagmill.engine.report.estimates import human_estimates

    return human_estimates(out)


def _thresholds(out: Path) -> dict[str, dict]:
    """The cleaning statistics per tag (similarity threshold, outlier cutoff), when the run cleaned."""
    path = storage.join(out, "clean_statistics.npz")
    if not storage.is_file(path):
        return {}
    from tagmill.engine.clean import load_statistics

    return {tag: stats.to_json() for tag, stats in sorted(load_statistics(path).items())}
