"""`tagmill run`: plan the input, settle the vocabulary, run the Beam graph, then account for every record."""

from __future__ import annotations

import argparse
import logging
import json
import platform
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import apache_beam as beam
from tqdm import tqdm

from tagmill.engine import storage
from tagmill.engine.config import DEFAULT_RUN_CONFIG, RunConfig, load_config, save_config
from tagmill.engine.parse.mine import select_vocabulary
from tagmill.engine.vocab import Vocabulary, read_synonyms
from tagmill.pipeline.graph import INPUT_INDEX, build_mining, build_run, make_pipeline
from tagmill.pipeline.sinks import stats_name
from tagmill.pipeline.sources import ShardTask, plan_input

SHARDS = "shards"
log = logging.getLogger(__name__)


class RunError(RuntimeError):
    """The run cannot start, or finished without accounting for every input record."""


@dataclass
class Timer:
    """Seconds spent in each phase of a run, for run.json."""

    last: float = field(default_factory=time.perf_counter)
    laps: dict[str, float] = field(default_factory=dict)

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.last = now


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML run config: a file or a shipped one (engine.yaml); default: default.yaml")
    parser.add_argument("--input", required=True, help="folder or glob of webdataset tars, or a JSONL/Parquet manifest")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--truth", help="truth.jsonl ({key, tags}): the report scores each stage's tags against it")


def run(argv: list[str] | None = None, test_pipeline: beam.Pipeline | None = None) -> dict:
    """`tagmill run` as a function: parse the arguments, run, report. Tests inject a TestPipeline."""
    parser = argparse.ArgumentParser(prog="tagmill run")
    add_arguments(parser)
    return execute(parser.parse_args(argv), test_pipeline)


def execute(args: argparse.Namespace, test_pipeline: beam.Pipeline | None = None) -> dict:
    config = load_config(args.config or DEFAULT_RUN_CONFIG, args.set)
    check_truth_file(args.truth)
    try:
        summary = run_job(config, args.input, args.output, test_pipeline)
    except RunError as err:
        raise ValueError(str(err)) from None
    write_report(args.output, args.truth)
    counts = summary["counts"]
    print(f"{counts['input']} samples: {counts['written']} written, {counts['rejected']} rejected "
          f"({summary['timings_s']['pipeline']:.1f} s in the pipeline)")
    out = args.output
    print(f"shards: {storage.join(out, SHARDS)}\nrun report: {storage.join(out, 'run.json')}\n"
          f"rejects: {storage.join(out, 'rejects.jsonl')}\naudit report: {storage.join(out, 'report.html')}")
    return summary


def check_truth_file(truth: str | None) -> None:
    """A clear error, before anything runs, when a given --truth is not a file."""
    if truth and not storage.is_file(truth):
        raise ValueError(f"--truth {truth} is not a file (truth.jsonl: one {{\"key\", \"tags\"}} per line)")


def input_folder(input_path: str) -> str:
    """The folder an input lives in: the input itself when it is a folder, else the manifest's or glob's folder."""
    return input_path if storage.is_dir(input_path) else storage.parent(input_path)


def write_report(output: str, truth: str | None = None) -> dict:
    """report.json and report.html from what the run wrote."""
    from tagmill.engine.report.build import build_report
    from tagmill.engine.report.html import write_html

    report = build_report(output, truth)
    write_html(report, output)
    return report


def run_job(config: RunConfig, input_path: str, output: str, test_pipeline: beam.Pipeline | None = None) -> dict:
    """Run the configured stages over the input into `output`; returns what run.json records."""
    timer = Timer()
    shards_dir = storage.join(output, SHARDS)
    tasks = plan_input(input_path, config.input.samples_per_shard)
    storage.makedirs(shards_dir)
    fingerprint = config.output_fingerprint()
    _check_resumable(shards_dir, fingerprint)
    timer.lap("plan")
    vocab = resolve_vocabulary(config, input_path, tasks, output)
    generator_tags = check_models(config, vocab)
    vocab.save(storage.join(output, "vocab.json"))
    save_config(config, storage.join(output, "config.yaml"))
    timer.lap("vocabulary")
    written = storage.list_names(shards_dir)
    pending = [t for t in tasks if stats_name(t.index) not in written]
    counters = _run_pipeline(config, tasks, pending, vocab, shards_dir, fingerprint, test_pipeline)
    timer.lap("pipeline")
    summary = _finalize(output, tasks, pending)
    timer.lap("finalize")
    summary.update(config=config.to_dict(), vocabulary={"source": vocab.source, "size": len(vocab)},
                   versions=_versions(), beam_counters=counters, timings_s=timer.laps)
    if generator_tags is not None:
        summary["generator_tags"] = generator_tags
    storage.write_text(storage.join(output, "run.json"), json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary


def resolve_vocabulary(config: RunConfig, input_path: str, tasks: list[ShardTask], output: str) -> Vocabulary:
    """The configured vocabulary, else the input folder's tags.txt (+ synonyms.json), else mined."""
    if config.parse.vocab:
        return Vocabulary.from_files(config.parse.vocab, config.parse.synonyms)
    folder = input_folder(input_path)
    if storage.is_file(storage.join(folder, "tags.txt")):
        synonyms = storage.join(folder, "synonyms.json")
        return Vocabulary.from_files(storage.join(folder, "tags.txt"), synonyms if storage.is_file(synonyms) else None)
    return _mine(config, tasks, output)


def check_models(config: RunConfig, vocab: Vocabulary) -> dict | None:
    """Fail before the pipeline starts when a configured model cannot serve this run; returns how the
    run's vocabulary maps onto the generator's tags (for run.json), None without a generator."""
    if "generate" not in config.stages:
        return None
    from tagmill.engine.merge import GeneratedTags, VocabularyMismatch
    from tagmill.model.checkpoint import CheckpointError, read_meta

    try:
        meta = read_meta(config.generate.model)
        merge = GeneratedTags(meta["tags"], meta["thresholds"], list(vocab.tags), synonyms=vocab.synonyms)
    except (CheckpointError, VocabularyMismatch) as err:
        raise RunError(f"generate.model: {err}") from None
    if config.generate.captions and not meta["config"].get("caption", {}).get("enabled"):
        raise RunError(f"generate.captions: the tagger {config.generate.model} has no caption head")
    match = merge.match
    for side, tags in (("the tagger's tags are not in the run's vocabulary and are never generated", match.model_only),
                       ("the run's tags are not scored by the tagger", match.vocabulary_only)):
        if tags:
            log.warning("%d of %s: %s", len(tags), side, ", ".join(tags[:10]))
    return {"model": config.generate.model, "family": meta["config"].get("family", "tagger"),
            "model_tags": len(meta["tags"]), **match.report()}


def _mine(config: RunConfig, tasks: list[ShardTask], output: str) -> Vocabulary:
    """Count terms over the input's captions with Beam and keep the most frequent, written to OUTPUT/vocab.json."""
    path = storage.join(output, "vocab.json")
    storage.makedirs(output)
    storage.remove(path)
    with make_pipeline(config) as pipeline:
        build_mining(pipeline, tasks, config, output) | beam.Map(_save_mined, config=config, path=path)
    result = json.loads(storage.read_text(path)) if storage.is_file(path) else {"error": "no usable captions to mine from"}
    if "error" in result:
        raise RunError(f"cannot mine a vocabulary: {result['error']}")
    vocab = Vocabulary.from_json(result)
    if not config.parse.synonyms:
        return vocab
    known = set(vocab.tags)
    return vocab.with_synonyms({t: f for t, f in read_synonyms(config.parse.synonyms).items() if t in known})


def _save_mined(counts, config: RunConfig, path: str) -> None:
    """Runs on a worker: select the vocabulary from the corpus counts and write it (or why not)."""
    try:
        result = select_vocabulary(counts, config.parse.mine.size, config.parse.mine.min_count).to_json()
    except ValueError as err:
        result = {"error": str(err)}
    storage.write_text(path, json.dumps(result, ensure_ascii=False))


def _check_resumable(shards_dir: str, fingerprint: str) -> None:
    for path in storage.glob(storage.join(shards_dir, "*_stats.json")):
        written_with = json.loads(storage.read_text(path)).get("fingerprint")
        if written_with != fingerprint:
            raise RunError(f"{shards_dir} holds shards written with another config or output schema "
                           f"({storage.name(path)}); use a new output folder")


def _run_pipeline(config: RunConfig, tasks: list[ShardTask], pending: list[ShardTask], vocab: Vocabulary,
                  shards_dir: str, fingerprint: str, test_pipeline: beam.Pipeline | None) -> dict[str, int]:
    with _progress(shards_dir, pending):
        pipeline = make_pipeline(config, test_pipeline)
        build_run(pipeline, tasks, pending, config, vocab.to_json(), shards_dir, fingerprint)
        result = pipeline.run()
        result.wait_until_finish()
    return _counters(result)


def _counters(result) -> dict[str, int]:
    try:
        counters = result.metrics().query()["counters"]
    except (AttributeError, NotImplementedError, KeyError):
        return {}
    return {c.key.metric.name: c.committed for c in counters if c.key.metric.namespace == "tagmill"}


class _progress:
    """A progress bar over shards, fed by the stats files appearing (one listing a tick), so it works
    whatever the runner and wherever the output is."""

    def __init__(self, shards_dir: str, pending: list[ShardTask]):
        self._shards_dir = shards_dir
        self._names = {stats_name(t.index) for t in pending}
        self._done = threading.Event()

    def _count(self) -> int:
        return len(self._names & storage.list_names(self._shards_dir))

    def __enter__(self):
        self._bar = tqdm(total=len(self._names), unit="shard", desc="tagmill run", mininterval=1.0)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._done.wait(0.5):
            self._bar.n = self._count()
            self._bar.refresh()

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self._bar.n = self._count()
        self._bar.close()
        return False


def _finalize(out: str, tasks: list[ShardTask], pending: list[ShardTask]) -> dict[str, Any]:
    """Gather every shard's stats and rejects; prove that indexed == read == written + rejected, shard
    by shard, against the input's index this run read (so a shard written earlier from input that has
    changed since is caught)."""
    shards_dir = storage.join(out, SHARDS)
    written = storage.list_names(shards_dir)
    missing = [t.name for t in tasks if stats_name(t.index) not in written]
    if missing:
        raise RunError(f"shards {missing[:5]} were not written; rerun to finish them")
    stats = [json.loads(storage.read_text(storage.join(shards_dir, stats_name(t.index)))) for t in tasks]
    indexed = json.loads(storage.read_text(storage.join(out, INPUT_INDEX)))
    changed = [t.name for t, s in zip(tasks, stats) if s["input"] != indexed[t.name]]
    if changed:
        raise RunError(f"shards {changed[:5]} were written from other input than the input now holds "
                       "(the input changed since); use a new output folder")
    _gather_rejects(out, tasks)
    counts = _sum_counts(stats)
    planned = sum(indexed[t.name] for t in tasks)
    if not counts["input"] == planned == counts["written"] + counts["rejected"]:
        raise RunError(f"records unaccounted for: indexed {planned}, read {counts['input']}, "
                       f"written {counts['written']} + rejected {counts['rejected']}")
    return {"counts": counts, "conservation": {"ok": True, "input": planned,
                                               "written_plus_rejected": counts["written"] + counts["rejected"]},
            "shards": len(tasks), "shards_skipped_as_complete": len(tasks) - len(pending)}


def _gather_rejects(out: str, tasks: list[ShardTask]) -> None:
    def gather(sink):
        for task in tasks:
            sink.write(storage.read_bytes(storage.join(out, SHARDS, f"{task.name}_rejects.jsonl")))

    storage.write_atomic(storage.join(out, "rejects.jsonl"), gather)


def _sum_counts(stats: list[dict]) -> dict[str, Any]:
    totals = {"input": 0, "written": 0, "rejected": 0}
    reasons: dict[str, int] = {}
    tags: dict[str, int] = {}
    for shard in stats:
        for key in totals:
            totals[key] += shard[key]
        for reason, n in shard["rejected_by_reason"].items():
            reasons[reason] = reasons.get(reason, 0) + n
        for tag, n in shard["tag_counts"].items():
            tags[tag] = tags.get(tag, 0) + n
    return {**totals, "rejected_by_reason": dict(sorted(reasons.items())), "tags": dict(sorted(tags.items()))}


def _versions() -> dict[str, str]:
    packages = ("tagmill", "apache-beam", "spacy", "pyarrow", "webdataset", "pillow")
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return {"python": platform.python_version(), **found}


