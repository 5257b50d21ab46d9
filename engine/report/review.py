"""A stratified random sample of a run's tag decisions for people to judge (`tagmill audit sample`).

A decision is one (image, tag) pair the run wrote: a final tag, or a dropped one with its rule. Every decision
falls in exactly one stratum: final tags by where they came from (`final:parsed`, `final:generated`,
`final:both`), dropped tags by the rule that dropped them (`dropped:RULE`), and, when asked for, the final
decisions of each of the most frequent tags (`tag:TAG`, taken out of the source strata).

Within a stratum the sample is the `per_stratum` decisions of lowest rank, a hash of the seed, the image and the
tag. That is a simple random sample without replacement; the same seed draws it again, and a larger
`per_stratum` only adds to it, since the lowest k ranks are the first of the lowest k + m. The estimates weigh
each stratum by its size in the run, so strata.json records every stratum's population: its size, how many of
its decisions the captions gave and how many the tagger gave, and how many were of each tag.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterator

from tagmill.engine import storage
from tagmill.engine.report.build import read_samples

AUDIT_DIR = "audit"
SAMPLE_JSONL = "sample.jsonl"
STRATA_JSON = "strata.json"
FINAL_PREFIXES = ("final:", "tag:")
DROPPED_PREFIX = "dropped:"


class SampleError(ValueError):
    """A sample that cannot be drawn or extended as asked."""


def audit_dir(out: str | Path) -> str:
    return storage.join(out, AUDIT_DIR)


def is_final(stratum: str) -> bool:
    return stratum.startswith(FINAL_PREFIXES)


def draw_sample(out: str | Path, per_stratum: int = 50, seed: int = 0, top_tags: int = 0) -> dict:
    """Draw (or extend) OUT/audit/sample.jsonl; returns how many items were added and the strata's sizes."""
    out = str(out)
    if per_stratum < 1 or top_tags < 0:
        raise SampleError("--per-stratum must be at least 1 and --top-tags at least 0")
    if not storage.is_dir(storage.join(out, "shards")):
        raise SampleError(f"{out} has no shards/ folder: not the output of `tagmill run`")
    frequent = _most_frequent_final_tags(out, top_tags)
    population, chosen = _scan(out, per_stratum, seed, frequent)
    strata = {"seed": seed, "top_tags": top_tags, "per_stratum": per_stratum, "strata": population}
    existing = read_items(out)
    previous = _read_strata(out)
    if previous is not None:
        _check_extends(previous, strata)
        strata["per_stratum"] = max(per_stratum, previous["per_stratum"])
    added = _new_items(chosen, {(item["sample"], item["tag"]) for item in existing})
    _append_items(out, added)
    storage.write_text(storage.join(audit_dir(out), STRATA_JSON), json.dumps(strata, indent=1, ensure_ascii=False) + "\n")
    sampled = Counter(item["stratum"] for item in existing + added)
    return {"added": len(added), "total": len(existing) + len(added),
            "strata": {name: {"size": info["size"], "sampled": sampled[name]} for name, info in population.items()}}


def decisions(sample: dict) -> Iterator[dict]:
    """The decisions of one written sample (as `read_samples` gives it), each with what a reviewer needs."""
    for tag, entries in sample["tag_sources"].items():
        sources = sorted({entry["source"] for entry in entries})
        drop = sample["dropped"].get(tag)
        yield {"sample": sample["id"], "tag": tag, "shard": sample["shard"], "image": sample["image"],
               "kept": drop is None, "sources": sources, "drop": drop}


def origin(sources: list[str]) -> str:
    """Where a tag came from: `parsed` (the captions only), `generated` (the tagger only) or `both`."""
    parsed = "parsed" in sources
    if parsed and len(sources) > 1:
        return "both"
    return "parsed" if parsed else "generated"


def stratum_of(decision: dict, frequent: frozenset[str]) -> str:
    if not decision["kept"]:
        return DROPPED_PREFIX + decision["drop"]["rule"]
    if decision["tag"] in frequent:
        return f"tag:{decision['tag']}"
    return "final:" + origin(decision["sources"])


def rank(seed: int, sample: str, tag: str) -> int:
    """A decision's place in the seed's random order: uniform, and the same wherever the decision is read."""
    digest = hashlib.sha256(f"{seed}\0{sample}\0{tag}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def read_items(out: str | Path) -> list[dict]:
    """The items of OUT/audit/sample.jsonl in review order (empty when nothing was drawn)."""
    path = storage.join(audit_dir(out), SAMPLE_JSONL)
    if not storage.is_file(path):
        return []
    return [json.loads(line) for line in storage.read_text(path).split("\n") if line.strip()]  # U+2028 is text


def read_strata(out: str | Path) -> dict:
    """OUT/audit/strata.json: the seed, and each stratum's population in the run."""
    strata = _read_strata(str(out))
    if strata is None:
        raise SampleError(f"{audit_dir(out)} holds no sample: draw one with `tagmill audit sample {out}`")
    return strata


def _read_strata(out: str) -> dict | None:
    path = storage.join(audit_dir(out), STRATA_JSON)
    return json.loads(storage.read_text(path)) if storage.is_file(path) else None


def _most_frequent_final_tags(out: str, count: int) -> frozenset[str]:
    if not count:
        return frozenset()
    frequency = Counter(tag for sample in read_samples(storage.join(out, "shards")) for tag in sample["tags"])
    return frozenset(tag for tag, _ in sorted(frequency.items(), key=lambda item: (-item[1], item[0]))[:count])


def _scan(out: str, per_stratum: int, seed: int, frequent: frozenset[str]) -> tuple[dict, dict[str, list[dict]]]:
    """One pass over the shards: every stratum's population, and its `per_stratum` lowest-ranked decisions."""
    population: dict[str, dict] = defaultdict(lambda: {"size": 0, "sources": Counter(), "tags": Counter()})
    lowest: dict[str, list] = defaultdict(list)  # per stratum, a heap of (-rank, decision): the largest on top
    for sample in read_samples(storage.join(out, "shards"), extra=("captions",)):
        for decision in decisions(sample):
            stratum = stratum_of(decision, frequent)
            _count(population[stratum], decision)
            _offer(lowest[stratum], per_stratum, rank(seed, decision["sample"], decision["tag"]),
                   {**decision, "stratum": stratum, "captions": sample["captions"] or []})
    chosen = {name: [item for _, _, item in sorted(heap, reverse=True)] for name, heap in lowest.items()}
    return {name: _population_json(info) for name, info in sorted(population.items())}, chosen


def _count(population: dict, decision: dict) -> None:
    population["size"] += 1
    population["tags"][decision["tag"]] += 1
    for source in decision["sources"]:
        population["sources"][source] += 1


def _offer(heap: list, size: int, order: int, item: dict) -> None:
    """Keep the `size` lowest-ranked items seen so far."""
    entry = (-order, item["sample"] + "\0" + item["tag"], item)
    if len(heap) < size:
        heapq.heappush(heap, entry)
    elif entry[:2] > heap[0][:2]:
        heapq.heapreplace(heap, entry)


def _population_json(info: dict) -> dict:
    return {"size": info["size"], "sources": dict(sorted(info["sources"].items())),
            "tags": dict(sorted(info["tags"].items()))}


def _check_extends(previous: dict, strata: dict) -> None:
    """A sample grows only with the seed, the tag strata and the run it was drawn with."""
    for key in ("seed", "top_tags"):
        if previous[key] != strata[key]:
            raise SampleError(f"the sample in audit/ was drawn with {key.replace('_', '-')} {previous[key]}, "
                              f"not {strata[key]}: give the same, or move audit/ away to draw a new sample")
    if previous["strata"] != strata["strata"]:
        raise SampleError("the run's outputs changed since its sample was drawn: audit/ no longer describes them")


def _new_items(chosen: dict[str, list[dict]], existing: set[tuple[str, str]]) -> list[dict]:
    """The chosen items not yet in the sample, in review order: each stratum's next item in turn."""
    added = []
    for stratum, items in chosen.items():
        for position, item in enumerate(items):
            if (item["sample"], item["tag"]) not in existing:
                added.append({**item, "position": position})
    return sorted(added, key=lambda item: (item["position"], item["stratum"]))


def _append_items(out: str, items: list[dict]) -> None:
    """Add the items to the sample file, which is rewritten whole (an object store cannot append), so it
    holds either all of them or none."""
    path = storage.join(audit_dir(out), SAMPLE_JSONL)
    drawn = storage.read_bytes(path) if storage.is_file(path) else b""
    lines = "".join(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n" for item in items)
    storage.makedirs(audit_dir(out))
    storage.write_bytes(path, drawn + lines.encode("utf-8"))
