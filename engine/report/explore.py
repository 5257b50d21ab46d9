"""A run's outputs as pandas frames, images and plots, for notebooks (`notebooks/audit.ipynb`).

Everything here reads what `tagmill run` and `tagmill rounds` wrote; nothing is recomputed.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from tagmill.engine.images import image_place, shard_image
from tagmill.engine.report.build import REPORT_JSON
from tagmill.engine.schema import IMAGE_PLACE_COLUMNS

SAMPLE_COLUMNS = ["id", "captions", "generated_caption", "tags", "tag_sources", "dropped"]


def load_report(run: str | Path) -> dict:
    """The run's report.json (`tagmill report RUN` rebuilds it)."""
    return json.loads((Path(run) / REPORT_JSON).read_text(encoding="utf-8"))


def samples_frame(run: str | Path) -> pd.DataFrame:
    """One row per written sample: its captions, final tags, the tags each source gave, and its drops."""
    frames = []
    for path in sorted((Path(run) / "shards").glob("*.parquet")):
        placed = set(IMAGE_PLACE_COLUMNS) <= set(pq.read_schema(path).names)
        frame = pd.read_parquet(path, columns=SAMPLE_COLUMNS + (list(IMAGE_PLACE_COLUMNS) if placed else []))
        frame.insert(1, "shard", path.stem)
        frames.append(frame)
    if not frames:
        raise ValueError(f"{run} has no shards/*.parquet: not the output of `tagmill run`")
    samples = pd.concat(frames, ignore_index=True)
    samples["parsed"] = samples["tag_sources"].map(lambda sources: _tags_from(sources, "parsed"))
    samples["generated"] = samples["tag_sources"].map(lambda sources: _tags_from(sources, "generated"))
    samples["dropped"] = samples["dropped"].map(list)
    return samples.drop(columns="tag_sources")


def _tags_from(sources, source: str) -> list[str]:
    return sorted({entry["tag"] for entry in sources if entry["source"] == source})


def drops_frame(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per dropped tag of `samples_frame`: the sample, the tag, the rule, its score and threshold."""
    rows = [{"id": sample.id, "shard": sample.shard, **drop} for sample in samples.itertuples()
            for drop in sample.dropped]
    return pd.DataFrame(rows, columns=["id", "shard", "tag", "rule", "score", "threshold"])


def noisiest_tags(report: dict, n: int = 10) -> pd.DataFrame:
    """The tags cleaning dropped most often, with their counts per source and rule and their drop rate."""
    rows = []
    for row in report["per_tag"]:
        candidates = row["kept"] + row["dropped_total"]
        rows.append({"tag": row["tag"], "parsed": row["parsed"], "generated": row["generated"], "kept": row["kept"],
                     "dropped": row["dropped_total"], "drop_rate": row["dropped_total"] / max(candidates, 1),
                     **{f"dropped: {rule}": count for rule, count in row["dropped"].items()}})
    frame = pd.DataFrame(rows, columns=None if rows else ["tag", "dropped"]).fillna(0)
    return frame.sort_values(["dropped", "tag"], ascending=[False, True]).head(n).reset_index(drop=True)


def rounds_frame(work: str | Path) -> pd.DataFrame:
    """rounds.json of a `tagmill rounds` folder, one row per round, its truth metrics as columns."""
    history = json.loads((Path(work) / "rounds.json").read_text(encoding="utf-8"))
    rows = [{"round": entry["round"], "folder": entry["folder"], "stages": ", ".join(entry["stages"]),
             "tags_per_sample": entry["tags_per_sample"]["cleaned"], "dropped": sum(entry["drops_by_rule"].values()),
             "model_map": entry["model_map"], "model_map_truth": entry.get("model_map_truth"),
             **entry.get("truth_metrics", {})} for entry in history]
    return pd.DataFrame(rows)


def human_estimates_frame(run: str | Path) -> pd.DataFrame:
    """People's verdicts on the run's audit sample (`tagmill audit`) as figures with 95% intervals, one row
    each: the precision of the final, parsed and generated tags, and the right share of each rule's drops.
    Read from OUT/audit/ itself, so it is current without rebuilding the report; empty before any judgment."""
    human = _human_estimates(run)
    rows = []
    if human:
        rows = [{"figure": f"precision: {key} tags", **_figure(human[key])} for key in ("final", "parsed", "generated")]
        rows += [{"figure": f"right among drops: {rule}", **_figure(figure)}
                 for rule, figure in sorted(human["rules"].items())]
    return pd.DataFrame(rows, columns=["figure", *HUMAN_COLUMNS])


def human_tags_frame(run: str | Path) -> pd.DataFrame:
    """Per tag with enough judgments, the human-verified precision of its final tags and right share of its drops."""
    human = _human_estimates(run) or {"tags": {}}
    rows = [{"tag": tag, "figure": kind, **_figure(figure)} for tag, figures in human["tags"].items()
            for kind, figure in figures.items()]
    return pd.DataFrame(rows, columns=["tag", "figure", *HUMAN_COLUMNS])


HUMAN_COLUMNS = ["estimate", "low", "high", "judgments", "unsure", "population"]


def _figure(figure: dict) -> dict:
    return {column: figure[column] for column in HUMAN_COLUMNS}


def _human_estimates(run: str | Path) -> dict | None:
    from tagmill.engine.report.estimates import human_estimates

    return human_estimates(run)


def show_samples(run: str | Path, samples: pd.DataFrame, columns: int = 3):
    """A matplotlib figure of the samples' images, each with its kept tags and its drops with their reasons.

    A bare Figure, not pyplot's: a notebook shows it as a cell's value and its plotting backend is left alone.
    """
    rows = max(1, -(-len(samples) // columns))
    figure = Figure(figsize=(4 * columns, 5.5 * rows))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, sample in zip(axes.flat, samples.itertuples()):
        place = image_place(getattr(sample, "image_offset", None), getattr(sample, "image_size", None))
        image = shard_image(Path(run) / "shards" / f"{sample.shard}.tar", sample.id, place)
        if image is not None:
            axis.imshow(image)
        drops = [f"{d['tag']}: {d['rule']} ({d['score']:.2f} vs {d['threshold']:.2f})" for d in sample.dropped]
        lines = [sample.id, "kept: " + (", ".join(sample.tags) or "(none)"), *drops]
        axis.text(0, -0.03, "\n".join(textwrap.fill(line, 48) for line in lines), transform=axis.transAxes,
                  fontsize=8, va="top")
    figure.tight_layout()
    return figure
