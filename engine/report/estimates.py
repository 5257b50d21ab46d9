"""Precision estimates from people's judgments of a stratified sample, with 95% intervals.

A figure over one stratum (a cleaning rule's drops, one stratum's precision) is a proportion of a simple random
sample: its interval is Wilson's. A figure over several strata (the final tags, the tags the captions gave, the
tags the tagger gave, one tag) is the stratified estimator: p = sum of W_h p_h, W_h the stratum's share of the
figure's population in the run (`strata.json`), p_h the share of right among the stratum's judged items of that
population. Its variance is sum of W_h^2 (1 - n_h/N_h) p_h (1 - p_h) / (n_h - 1), with the finite-population
correction, since a small stratum may be sampled whole. Its interval is Wilson's at the effective sample size
p (1 - p) / variance, capped at the judgments' count: strata whose few judgments happen to agree have a
variance near 0, which must not make the interval narrower than that many judgments allow (when every judged
stratum is all right or all wrong the count itself is used). A stratum of the population with no judged item of
it has no say: its share is reported as `unjudged_share`. `unsure` and `disputed` items are counted and left out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable

from statsmodels.stats.proportion import proportion_confint

from tagmill.engine import storage
from tagmill.engine.report.judgments import JUDGMENTS_JSONL, consensus, latest_verdicts, read_judgments
from tagmill.engine.report.review import DROPPED_PREFIX, audit_dir, is_final, read_items, read_strata

CONFIDENCE = 0.95
MIN_TAG_JUDGMENTS = 10  # a tag's own figures are given from this many right-or-wrong judgments on
METHOD = ("stratified estimator weighted by stratum sizes, Wilson interval at the effective sample size "
          "(at most the judgments' count); Wilson for one stratum; unsure and disputed left out")


@dataclass
class Cell:
    """One stratum's part of a figure: its population in the run and its judged items' verdicts."""

    population: int
    right: int = 0
    wrong: int = 0
    unsure: int = 0

    @property
    def judged(self) -> int:
        return self.right + self.wrong


def wilson(right: float, judged: float) -> tuple[float, float]:
    low, high = proportion_confint(right, judged, alpha=1 - CONFIDENCE, method="wilson")
    return float(low), float(high)


def estimate(cells: list[Cell]) -> dict:
    """The figure of a population split into strata: Wilson for one stratum, else the stratified estimator."""
    judged = [cell for cell in cells if cell.judged]
    population = sum(cell.population for cell in cells)
    found = {"judgments": sum(cell.judged for cell in cells), "unsure": sum(cell.unsure for cell in cells),
             "population": population, "strata": len(judged),
             "unjudged_share": _round(sum(c.population for c in cells if not c.judged) / max(population, 1))}
    if not judged:
        return {"estimate": None, "low": None, "high": None, **found}
    if len(judged) == 1:
        value, (low, high) = judged[0].right / judged[0].judged, wilson(judged[0].right, judged[0].judged)
    else:
        value, (low, high) = _stratified(judged)
    return {"estimate": _round(value), "low": _round(low), "high": _round(high), **found}


def _stratified(cells: list[Cell]) -> tuple[float, tuple[float, float]]:
    total = sum(cell.population for cell in cells)
    weights = [cell.population / total for cell in cells]
    shares = [cell.right / cell.judged for cell in cells]
    value = sum(w * p for w, p in zip(weights, shares))
    variance = sum(w * w * max(1 - c.judged / c.population, 0.0) * p * (1 - p) / max(c.judged - 1, 1)
                   for w, p, c in zip(weights, shares, cells))
    judgments = sum(cell.judged for cell in cells)
    effective = min(value * (1 - value) / variance, judgments) if variance > 0 else judgments
    return value, wilson(value * effective, effective)


def _round(value: float) -> float:
    return round(float(value), 4)


def human_estimates(out) -> dict | None:
    """The run's figures from OUT/audit/judgments.jsonl; None when nobody has judged anything yet."""
    judgments = read_judgments(storage.join(audit_dir(out), JUDGMENTS_JSONL))
    if not judgments:
        return None
    strata, items = read_strata(out)["strata"], read_items(out)
    verdicts = {key: consensus(by) for key, by in latest_verdicts(judgments).items()}
    judged = [(item, verdicts[key]) for item in items if (key := (item["sample"], item["tag"])) in verdicts]
    figures = _Figures(strata, judged, Counter(item["stratum"] for item in items))
    return {"final": figures.final(), "parsed": figures.by_source("parsed"),
            "generated": figures.by_source("generated"), "rules": figures.rules(), "strata": figures.strata_table(),
            "tags": figures.tags(), "judgments": _summary(judgments, verdicts, judged), "method": METHOD}


def _summary(judgments: list[dict], verdicts: dict, judged: list) -> dict:
    counts = Counter(verdict for _, verdict in judged)
    return {"lines": len(judgments), "reviewers": sorted({line["reviewer"] for line in judgments}),
            "items": len(judged), "not_in_sample": len(verdicts) - len(judged),
            **{verdict: counts[verdict] for verdict in ("right", "wrong", "unsure", "disputed")}}


class _Figures:
    """Each figure as cells: per stratum, the figure's population there and its judged items' verdicts."""

    def __init__(self, strata: dict[str, dict], judged: list[tuple[dict, str]], sampled: Counter):
        self.strata = strata
        self.sampled = sampled
        self.judged: dict[str, list[tuple[dict, str]]] = defaultdict(list)
        for item, verdict in judged:
            self.judged[item["stratum"]].append((item, verdict))

    def cells(self, names: list[str], population: Callable[[dict], int], member: Callable[[dict], bool]) -> list[Cell]:
        found = []
        for name in names:
            cell = Cell(population(self.strata[name]))
            for item, verdict in self.judged.get(name, []):
                if member(item) and verdict in ("right", "wrong", "unsure"):
                    setattr(cell, verdict, getattr(cell, verdict) + 1)
            if cell.population:
                found.append(cell)
        return found

    def final(self) -> dict:
        return estimate(self.cells([n for n in self.strata if is_final(n)], lambda s: s["size"], lambda item: True))

    def by_source(self, source: str) -> dict:
        return estimate(self.cells(list(self.strata), lambda s: s["sources"].get(source, 0),
                                   lambda item: source in item["sources"]))

    def rules(self) -> dict:
        """Per cleaning rule, the share of its drops that were right tags."""
        return {name[len(DROPPED_PREFIX):]: self.stratum(name) for name in self.strata
                if name.startswith(DROPPED_PREFIX)}

    def stratum(self, name: str) -> dict:
        return estimate(self.cells([name], lambda s: s["size"], lambda item: True))

    def strata_table(self) -> dict:
        return {name: {**self.stratum(name), "sampled": self.sampled[name]} for name in self.strata}

    def tags(self) -> dict:
        """Per tag with enough judgments: the precision of its final decisions and the right share of its drops."""
        found = {}
        for tag in sorted({item["tag"] for items in self.judged.values() for item, _ in items}):
            figures = {"final": self._tag(tag, True), "dropped": self._tag(tag, False)}
            figures = {kind: f for kind, f in figures.items() if f["judgments"] >= MIN_TAG_JUDGMENTS}
            if figures:
                found[tag] = figures
        return found

    def _tag(self, tag: str, final: bool) -> dict:
        names = [name for name in self.strata if is_final(name) == final]
        return estimate(self.cells(names, lambda s: s["tags"].get(tag, 0), lambda item: item["tag"] == tag))
