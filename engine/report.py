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

from tagmill.engine.audit import STAGES, read_truth, stage_tags, truth_metrics

REPORT_JSON = "report.json"
SCORE_KINDS = ("tagger", "clip", "outlier")
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
    """The report's data; also written to OUT/report.json."""
    out = Path(out)
    if not (out / "shards").is_dir():
        raise ValueError(f"{out} has no shards/ folder: not the output of `tagmill run`")
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    samples = list(read_samples(out / "shards"))
    report = {
        "samples": len(samples),
        "counts": run.get("counts", {}),
        "conservation": run.get("conservation", {}),
        "stages": run.get("config", {}).get("stages", []),
        "tags_per_sample": _tags_per_sample(samples),
        "drops_by_rule": dict(Counter(d["rule"] for s in samples for d in s["dropped"].values())),
        "per_tag": _per_tag(samples),
        "score_histograms": _score_histograms(samples),
        "thresholds": _thresholds(out),
        "examples": _examples(samples),
    }
    for example in report["examples"]:
        example["histograms"] = _score_histograms(samples, only_tag=example["tag"])
        example["thresholds"] = report["thresholds"].get(example["tag"], {})
    if truth:
        report["truth_metrics"] = truth_metrics(samples, read_truth(truth))
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return report


def _tags_per_sample(samples: list[dict]) -> dict[str, float]:
    if not samples:
        return {stage: 0.0 for stage in STAGES}
    per_stage = [stage_tags(s) for s in samples]
    return {stage: round(sum(len(t[stage]) for t in per_stage) / len(samples), 4) for stage in STAGES}


def _per_tag(samples: list[dict]) -> list[dict]:
    """Per tag: parsed, generated (by the tagger), both, dropped by each rule, kept; most dropped first."""
    rows: dict[str, dict] = defaultdict(lambda: {"parsed": 0, "generated": 0, "both": 0, "dropped": Counter(),
                                                 "kept": 0})
    for sample in samples:
        for tag, entries in sample["tag_sources"].items():
            kinds = {e["source"] for e in entries}
            row = rows[tag]
            row["parsed"] += "parsed" in kinds
            row["generated"] += "generated" in kinds
            row["both"] += kinds >= {"parsed", "generated"}
            if tag in sample["dropped"]:
                row["dropped"][sample["dropped"][tag]["rule"]] += 1
            else:
                row["kept"] += 1
    table = [{"tag": tag, **row, "dropped": dict(row["dropped"]), "dropped_total": sum(row["dropped"].values())}
             for tag, row in rows.items()]
    return sorted(table, key=lambda r: (-r["dropped_total"], r["tag"]))


def _score_histograms(samples: list[dict], only_tag: str | None = None) -> dict[str, dict]:
    """Per score kind, histograms of the kept and the dropped tags' scores over shared bins."""
    histograms = {}
    for kind in SCORE_KINDS:
        kept, dropped = [], []
        for sample in samples:
            for tag, scores in sample["scores"].items():
                if kind in scores and only_tag in (None, tag):
                    (dropped if tag in sample["dropped"] else kept).append(scores[kind])
        if not kept and not dropped:
            continue
        edges = np.histogram_bin_edges(np.array(kept + dropped), bins=HISTOGRAM_BINS)
        histograms[kind] = {"edges": [round(float(e), 5) for e in edges],
                            "kept": np.histogram(kept, edges)[0].tolist(),
                            "dropped": np.histogram(dropped, edges)[0].tolist()}
    return histograms


def _thresholds(out: Path) -> dict[str, dict]:
    """The cleaning statistics per tag (similarity threshold, outlier cutoff), when the run cleaned."""
    path = out / "clean_statistics.npz"
    if not path.is_file():
        return {}
    from tagmill.engine.clean import load_statistics

    return {tag: stats.to_json() for tag, stats in sorted(load_statistics(path).items())}


def _examples(samples: list[dict]) -> list[dict]:
    """For the most-dropped tags, a few samples that lost them, with every tag's fate."""
    dropped_counts = Counter(tag for s in samples for tag in s["dropped"])
    examples = []
    for tag, count in dropped_counts.most_common(EXAMPLE_TAGS):
        chosen = [s for s in samples if tag in s["dropped"]][:EXAMPLES_PER_TAG]
        examples.append({"tag": tag, "dropped": count, "samples": [
            {"id": s["id"], "shard": s["shard"], "kept": s["tags"], "dropped": s["dropped"]} for s in chosen]})
    return examples
