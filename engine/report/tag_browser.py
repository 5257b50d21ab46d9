"""The audit report's tag browser: every tag in a table that sorts by any column and filters by name, and each
tag's examples, kept and dropped, with their reasons and scores, a page at a time.

The page stays one self-contained file: the examples, their thumbnails and the script (`browse.js`, shipped
beside this module) are inlined, and nothing is fetched.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from importlib import resources

from tagmill.engine.report.estimates_html import estimate_text
from tagmill.engine.report.html_parts import thumbnail_base64

THUMBNAIL = 72
MAX_THUMBNAILS = 1500  # the most-shown examples get an image; the rest are shown as text
BROWSE_SCRIPT = "browse.js"


def tag_browser_section(report: dict, images: dict[str, bytes]) -> str:
    """The per-tag table, the panel a tag's examples open in, and the data and script behind them;
    `images` holds the encoded images of the shown samples (`shown_samples`)."""
    rules = sorted({rule for row in report["per_tag"] for rule in row["dropped"]})
    human = report.get("human_estimates", {}).get("tags", {})
    header = "".join(f"<th data-type='{kind}' tabindex='0' title='sort'>{html.escape(label)}</th>"
                     for label, kind in _columns(rules))
    body = "".join(_row(row, rules, human.get(row["tag"], {})) for row in report["per_tag"])
    return (f"<h2 id='tags'>Per tag ({len(report['per_tag'])})</h2>"
            "<p>Click a column's name to sort by it (again to reverse), type to filter the tags, and click a tag "
            "for its examples.</p><p><input id='tag-filter' type='search' placeholder='filter tags' "
            "aria-label='filter tags'> <span id='tag-count'></span></p><div id='tag-examples' hidden></div>"
            f"<table id='tag-table'><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"
            + _browse_data(report, images) + f"<script>{browse_script()}</script>")


def _columns(rules: list[str]) -> list[tuple[str, str]]:
    automatic = [("tag", "text"), ("parsed", "number"), ("generated", "number"), ("both", "number"),
                 *((f"dropped: {rule}", "number") for rule in rules), ("kept", "number"), ("drop rate", "number")]
    return automatic + [("human precision", "number"), ("95% interval", "text"), ("judged", "number")]


def _row(row: dict, rules: list[str], human: dict) -> str:
    candidates = row["kept"] + row["dropped_total"]
    final = human.get("final")
    estimate, interval = estimate_text(final)
    cells = [row["parsed"], row["generated"], row["both"], *(row["dropped"].get(rule, 0) for rule in rules),
             row["kept"], f"{row['dropped_total'] / max(candidates, 1):.3f}", estimate, interval,
             final["judgments"] if final else ""]
    tag = html.escape(row["tag"])
    return (f"<tr data-tag='{tag}'><td><button type='button' class='tag-link'>{tag}</button></td>"
            + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) + "</tr>")


def _browse_data(report: dict, images: dict[str, bytes]) -> str:
    """The examples as JSON inside the page, where the script reads them; `<` is escaped so none can end it."""
    found = {sample_id: thumbnail_base64(images.get(sample_id), THUMBNAIL, quality=80) for sample_id in shown_samples(report)}
    data = {"examples": report.get("tag_examples", {}), "samples": report.get("example_samples", {}),
            "thumbnails": {sample_id: thumbnail for sample_id, thumbnail in found.items() if thumbnail}}
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return f"<script type='application/json' id='browse-data'>{text}</script>"


def shown_samples(report: dict) -> dict[str, dict]:
    """The examples the page shows an image of, the most-shown first: {id: {"shard", "image", ...}}."""
    samples = report.get("example_samples", {})
    shown = Counter(sample for parts in report.get("tag_examples", {}).values() for ids in parts.values() for sample in ids)
    ranked = sorted(shown.items(), key=lambda item: (-item[1], item[0]))[:MAX_THUMBNAILS]
    return {sample_id: samples[sample_id] for sample_id, _ in ranked}


def browse_script() -> str:
    """browse.js, which ships as package data beside this module."""
    return resources.files("tagmill.engine.report").joinpath(BROWSE_SCRIPT).read_text(encoding="utf-8")
