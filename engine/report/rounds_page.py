"""The rounds page of the audit report: each bootstrapped round's figures side by side, plotted across rounds."""

from __future__ import annotations

import html

from tagmill.engine import storage
from tagmill.engine.report.html import REPORT_HTML, figure_html, html_table, pyplot, write_page


def write_rounds_page(history: list[dict], work: str) -> str:
    """WORK/report.html: a table and plots of rounds.json, linking each round's own audit report."""
    sections = [_rounds_table(history), _truth_table(history), _plots(history)]
    return write_page(storage.join(work, REPORT_HTML), "tagmill rounds", sections)


def _rounds_table(history: list[dict]) -> str:
    rules = sorted({rule for entry in history for rule in entry["drops_by_rule"]})
    header = ["round", "stages", "samples", "tags/sample parsed", "tags/sample generated", "tags/sample final",
              *(f"dropped: {r}" for r in rules), "model mAP (held out)", "model mAP vs truth (held out)", "report"]
    rows = []
    for entry in history:
        per_sample = entry["tags_per_sample"]
        rows.append((entry["round"], ", ".join(entry["stages"]), entry["samples"], f"{per_sample['parsed']:.2f}",
                     f"{per_sample['generated']:.2f}", f"{per_sample['cleaned']:.2f}",
                     *(entry["drops_by_rule"].get(r, 0) for r in rules),
                     entry["model_map"], entry.get("model_map_truth", ""), _link(entry["folder"])))
    return ("<h2>Rounds</h2><p>Round 0 parses the captions; round k also generates tags with round k-1's "
            "tagger and cleans them. Every round's tagger is trained on that round's final tags.</p>"
            + html_table(header, rows, escape_last=False))


def _link(folder: str) -> str:
    return f"<a href='{html.escape(folder)}/{REPORT_HTML}'>{html.escape(folder)}</a>"


def _truth_table(history: list[dict]) -> str:
    scored = [entry for entry in history if "truth_metrics" in entry]
    if not scored:
        return ""
    rows = [(e["round"], f"{e['truth_metrics']['precision']:.3f}", f"{e['truth_metrics']['recall']:.3f}",
             f"{e['truth_metrics']['f1']:.3f}") for e in scored]
    return "<h2>Final tags against the truth</h2>" + html_table(["round", "precision", "recall", "F1"], rows)


def _plots(history: list[dict]) -> str:
    plt = pyplot()
    rounds = [entry["round"] for entry in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    scored = [entry for entry in history if "truth_metrics" in entry]
    for metric in ("precision", "recall", "f1"):
        left.plot([e["round"] for e in scored], [e["truth_metrics"][metric] for e in scored], marker="o", label=metric)
    left.set_title("final tags against the truth" if scored else "no truth.jsonl: nothing to score against")
    right.plot(rounds, [e["model_map"] for e in history], marker="o", label="vs the round's tags")
    if all("model_map_truth" in e for e in history):
        right.plot(rounds, [e["model_map_truth"] for e in history], marker="o", label="vs the truth")
    right.set_title("the round's tagger: held-out mAP")
    for axis in (left, right):
        axis.set_xlabel("round")
        axis.set_xticks(rounds)
        axis.legend(fontsize=8)
    return "<h2>Across rounds</h2>" + figure_html(figure)
