"""The audit report's section of human-verified estimates, beside the automatic figures they check."""

from __future__ import annotations

import html

from tagmill.engine.report.html_parts import html_table

FIGURES = (("final", "final tags", "cleaned"), ("parsed", "tags the captions gave", "parsed"),
           ("generated", "tags the tagger gave", None))


def human_section(report: dict) -> str:
    """Precision of the final, parsed and generated tags and the right share of each rule's drops, with 95%
    intervals; or, before anyone has judged, how to start."""
    human = report.get("human_estimates")
    title = "<h2 id='human-estimates'>Human-verified estimates</h2>"
    if not human:
        return title + ("<p>No judgments yet. Draw a sample of this run's tag decisions with "
                        "<code>tagmill audit sample OUT</code>, review it with <code>tagmill audit serve OUT</code>, "
                        "and rebuild this report with <code>tagmill report OUT</code>.</p>")
    return title + _judgment_line(human["judgments"]) + _precision_table(report, human) + \
        _rules_table(report, human) + _strata_table(human) + f"<p class='note'>{html.escape(human['method'])}.</p>"


def estimate_text(figure: dict | None) -> tuple[str, str]:
    """An estimate and its 95% interval as text; dashes when there is none."""
    if not figure or figure.get("estimate") is None:
        return "—", "—"
    return f"{figure['estimate']:.3f}", f"[{figure['low']:.3f}, {figure['high']:.3f}]"


def _judgment_line(counts: dict) -> str:
    reviewers = ", ".join(counts["reviewers"])
    return (f"<p>{counts['items']} sampled decisions judged by {html.escape(reviewers)}: {counts['right']} right, "
            f"{counts['wrong']} wrong, {counts['unsure']} unsure, {counts['disputed']} disputed "
            "(unsure and disputed are left out).</p>")


def _precision_table(report: dict, human: dict) -> str:
    truth = report.get("truth_metrics", {})
    rows = []
    for key, label, stage in FIGURES:
        figure = human[key]
        against_truth = truth.get(stage, {}).get("precision") if stage else None
        rows.append((label, *estimate_text(figure), figure["judgments"], figure["unsure"], figure["population"],
                     "—" if against_truth is None else f"{against_truth:.3f}"))
    return html_table(["precision of", "estimate", "95% interval", "judgments", "unsure", "in the run",
                       "against truth.jsonl"], rows)


def _rules_table(report: dict, human: dict) -> str:
    if not human["rules"]:
        return ""
    rows = [(rule, report["drops_by_rule"].get(rule, 0), *estimate_text(figure), figure["judgments"], figure["unsure"])
            for rule, figure in sorted(human["rules"].items())]
    return "<h3>Right tags among each rule's drops</h3>" + \
        html_table(["rule", "dropped", "right share", "95% interval", "judgments", "unsure"], rows)


def _strata_table(human: dict) -> str:
    rows = [(name, figure["population"], figure["sampled"], *estimate_text(figure), figure["judgments"],
             figure["unsure"]) for name, figure in human["strata"].items()]
    return ("<details><summary>Per stratum</summary>"
            + html_table(["stratum", "in the run", "sampled", "right share", "95% interval", "judgments", "unsure"],
                         rows) + "</details>")
