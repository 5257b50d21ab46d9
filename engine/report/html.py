"""The audit report as one self-contained HTML page: plots, thumbnails and its script embedded, opens offline."""

from __future__ import annotations

import base64
import html
import io

from tagmill.engine import storage
from tagmill.engine.images import read_images
from tagmill.engine.report.estimates_html import human_section
from tagmill.engine.report.html_parts import html_table, thumbnail_base64
from tagmill.engine.report.tag_browser import shown_samples, tag_browser_section

REPORT_HTML = "report.html"
THUMBNAIL = 96
COLORS = {"kept": "#3a7d44", "dropped": "#c0392b"}


def write_html(report: dict, out: str) -> str:
    examples = {sample["id"]: sample for example in report["examples"] for sample in example["samples"]}
    images = read_images(storage.join(out, "shards"), {**shown_samples(report), **examples})  # fetched together
    sections = [_summary(report), _truth(report), human_section(report), _overview_plots(report),
                _score_plots(report), _examples(report, images), tag_browser_section(report, images)]
    return write_page(storage.join(out, REPORT_HTML), "tagmill audit report", sections)


def write_page(path: str, title: str, sections: list[str]) -> str:
    """One self-contained HTML page of the given sections, under a title."""
    page = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>")
    storage.write_text(path, page)
    return path


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img.plot{max-width:100%}
.sample{display:inline-block;vertical-align:top;width:230px;margin:6px;font-size:12px}
.kept{color:#3a7d44}.dropped{color:#c0392b}.note{color:#666;font-size:12px}
th[data-type]{cursor:pointer;user-select:none}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}button.tag-link{border:0;background:none;color:#1a5fb4;
cursor:pointer;padding:0;font:inherit;text-decoration:underline}#tag-examples{border:1px solid #ccc;padding:0 1em 1em;
margin:1em 0;background:#fafafa}#tag-examples .close{float:right}.pager{margin:6px}.caption{font-style:italic}"""


def _summary(report: dict) -> str:
    counts = report.get("counts", {})
    rows = [("samples written", counts.get("written", report["samples"])), ("input records", counts.get("input", "")),
            ("rejected", counts.get("rejected", "")), ("stages", ", ".join(report.get("stages", [])))]
    rows += [(f"rejected: {reason}", n) for reason, n in sorted(counts.get("rejected_by_reason", {}).items())]
    ok = report.get("conservation", {}).get("ok")
    rows.append(("conservation", "every input record accounted for" if ok else "NOT CHECKED OR FAILED"))
    return "<h2>Run</h2>" + html_table(["", ""], rows)


def _truth(report: dict) -> str:
    metrics = report.get("truth_metrics")
    if not metrics:
        return ""
    rows = [(stage, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}") for stage, m in metrics.items()]
    return "<h2>Against the truth</h2>" + html_table(["tags after", "precision", "recall", "F1"], rows)


def _overview_plots(report: dict) -> str:
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    per_sample = report["tags_per_sample"]
    left.bar(list(per_sample), list(per_sample.values()), color="#4a6fa5")
    left.set_title("tags per sample after each stage")
    drops = report["drops_by_rule"] or {"(none)": 0}
    right.bar(list(drops), list(drops.values()), color=COLORS["dropped"])
    right.set_title("tags dropped, by rule")
    return "<h2>Stages</h2>" + figure_html(figure)


def _score_plots(report: dict) -> str:
    histograms = report["score_histograms"]
    if not histograms:
        return ""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(histograms), figsize=(4 * len(histograms), 3), squeeze=False)
    for axis, (kind, histogram) in zip(axes[0], histograms.items()):
        _histogram(axis, histogram, f"{kind} score, all tags")
    return "<h2>Score distributions</h2>" + figure_html(figure)


def _histogram(axis, histogram: dict, title: str, marks: dict | None = None) -> None:
    edges = histogram["edges"]
    width = (edges[1] - edges[0]) if len(edges) > 1 else 1.0
    for part in ("kept", "dropped"):
        axis.bar(edges[:-1], histogram[part], width=width, align="edge", alpha=0.6, color=COLORS[part], label=part)
    for name, value in (marks or {}).items():
        if value is not None:
            axis.axvline(value, color="black", linestyle="--", label=name)
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)


def _examples(report: dict, images: dict[str, bytes]) -> str:
    if not report["examples"]:
        return ""
    plt = pyplot()
    parts = ["<h2>The most-dropped tags</h2>"]
    for example in report["examples"]:
        tag = example["tag"]
        parts.append(f"<h3>{html.escape(tag)}: dropped {example['dropped']} times</h3>")
        histograms = example.get("histograms", {})
        if histograms:
            figure, axes = plt.subplots(1, len(histograms), figsize=(3.6 * len(histograms), 2.4), squeeze=False)
            marks = {"clip": {"threshold": example["thresholds"].get("similarity_threshold")},
                     "outlier": {"cutoff": example["thresholds"].get("cutoff")}}
            for axis, (kind, histogram) in zip(axes[0], histograms.items()):
                _histogram(axis, histogram, f"{tag}: {kind}", marks.get(kind))
            parts.append(figure_html(figure))
        parts.extend(_sample_card(sample, images.get(sample["id"])) for sample in example["samples"])
    return "".join(parts)


def _sample_card(sample: dict, image_data: bytes | None) -> str:
    thumbnail = thumbnail_base64(image_data, THUMBNAIL, quality=85)
    image = f"<img alt='{html.escape(sample['id'])}' src='data:image/jpeg;base64,{thumbnail}'>" if thumbnail else ""
    kept = ", ".join(html.escape(t) for t in sample["kept"]) or "(none)"
    dropped = "<br>".join(f"{html.escape(t)}: {html.escape(d['rule'])} ({d['score']:.3f} vs {d['threshold']:.3f})"
                          for t, d in sorted(sample["dropped"].items()))
    return (f"<div class='sample'>{image}<br><b>{html.escape(sample['id'])}</b><br>"
            f"<span class='kept'>kept: {kept}</span><br><span class='dropped'>{dropped}</span></div>")


def figure_html(figure) -> str:
    plt = pyplot()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return f"<img class='plot' alt='plot' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    return plt
