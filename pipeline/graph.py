"""The Beam graphs: the main run (read → check → parse → generate → clean → write) and vocabulary mining."""

from __future__ import annotations

import json
from typing import Iterable

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from tagmill.engine import storage
from tagmill.engine.config import RunConfig
from tagmill.engine.parse.mine import TermCounter, TermCounts
from tagmill.pipeline.sinks import WriteShards
from tagmill.pipeline.index import id_places, kept_ids, later_places, with_duplicates
from tagmill.pipeline.sources import ShardTask, read_shard
from tagmill.pipeline.transforms import CountRecords, ParseCaptions, check_image

EMBEDDED_RUNNER = "FnApiRunner"
CLEAN_STATISTICS = "clean_statistics.npz"  # per-tag thresholds and clusters, beside the shards
INPUT_INDEX = "input_index.json"  # the records each task of the input holds, beside the shards
INPUT_INDEX_DIR = "input_index"  # each task's ids and the version of the file they were read from


def make_pipeline(config: RunConfig, test_pipeline: beam.Pipeline | None = None) -> beam.Pipeline:
    """A pipeline on the configured runner; the embedded default never downloads a runner binary."""
    if test_pipeline is not None:
        return test_pipeline
    options = PipelineOptions(list(config.runner.options) + _worker_options(config))
    runner = FnApiRunner() if config.runner.name == EMBEDDED_RUNNER else config.runner.name
    return beam.Pipeline(runner=runner, options=options)


def _worker_options(config: RunConfig) -> list[str]:
    if config.runner.name != EMBEDDED_RUNNER:
        return []
    mode = "multi_processing" if config.runner.workers > 1 else "in_memory"
    return [f"--direct_num_workers={config.runner.workers}", f"--direct_running_mode={mode}"]


class IndexInput(beam.PTransform):
    """The input's index, read on the workers: (task, records it holds) and (task, position) of every
    record whose id appeared earlier in the input, so the first occurrence of an id wins wherever the
    copies sit.

    Every task is indexed, also those a resumed run has already written, since their ids still come first;
    each task's ids are kept in `index_dir`, so a rerun reads again only the input that has changed.
    """

    def __init__(self, tasks: list[ShardTask], index_dir: str):
        super().__init__()
        self._tasks, self._index_dir = tasks, index_dir

    def expand(self, pipeline: beam.Pipeline) -> tuple[beam.PCollection, beam.PCollection]:
        ids = (pipeline
               | "Tasks" >> beam.Create(self._tasks)  # Create spreads them over the workers
               | "ReadIds" >> beam.Map(kept_ids, index_dir=self._index_dir))
        sizes = ids | "Sizes" >> beam.MapTuple(lambda shard, found: (shard, len(found)))
        duplicates = (
            ids
            | "IdPlaces" >> beam.FlatMap(id_places)
            | "ById" >> beam.GroupByKey()
            | "LaterPlaces" >> beam.FlatMap(later_places)
        )
        return sizes, duplicates


def _marked_tasks(pipeline: beam.Pipeline, tasks: list[ShardTask], duplicates: beam.PCollection) -> beam.PCollection:
    """The tasks spread over the workers (beam.Create reshuffles them), each with its duplicate
    positions from the index."""
    return (
        pipeline
        | "Shards" >> beam.Create(tasks)
        | "MarkDuplicates" >> beam.Map(with_duplicates, duplicates=beam.pvalue.AsMultiMap(duplicates))
    )


def build_run(pipeline: beam.Pipeline, tasks: list[ShardTask], pending: list[ShardTask], config: RunConfig,
              vocab: dict, shards_dir: str, fingerprint: str) -> beam.PCollection | None:
    """Index the input (saved beside the shards), then read every pending shard, check and parse its
    records, write it; yields each shard's stats (None when no shard is pending)."""
    output = storage.parent(shards_dir)
    sizes, duplicates = pipeline | "Index" >> IndexInput(tasks, storage.join(output, INPUT_INDEX_DIR))
    index_file = storage.join(output, INPUT_INDEX)
    _ = sizes | "IndexSizes" >> beam.combiners.ToDict() | "SaveIndex" >> beam.Map(_save_index, path=index_file)
    if not pending:
        return None
    records = (
        _marked_tasks(pipeline, pending, duplicates)
        | "Read" >> beam.FlatMap(read_shard, max_caption_chars=config.input.max_caption_chars,
                                 repair_text=config.input.repair_text)
        | "Count" >> beam.ParDo(CountRecords())
        | "CheckImage" >> beam.Map(check_image, max_pixels=config.input.max_image_pixels)
    )
    if "parse" in config.stages:
        records = records | "Parse" >> beam.ParDo(ParseCaptions(vocab))
    if "generate" in config.stages or "clean" in config.stages:
        records = _model_stages(records, config, vocab, shards_dir)
    if config.runner.break_fusion:
        records = records | "BreakFusion" >> beam.Reshuffle()
    return records | "Write" >> WriteShards(shards_dir, sizes, {t.index for t in pending}, fingerprint)


def _save_index(sizes: dict[int, int], path: str) -> None:
    """Runs on a worker: {shard name: records} for the driver's conservation check."""
    storage.write_text(path, json.dumps({f"{shard:05d}": size for shard, size in sorted(sizes.items())}) + "\n")


def _model_stages(records: beam.PCollection, config: RunConfig, vocab: dict, shards_dir: str) -> beam.PCollection:
    """Generate and Clean, imported only by runs that have them: Beam's RunInference imports torch,
    which a parse-only run never loads."""
    from tagmill.pipeline.stages import Clean, Generate

    if "generate" in config.stages:
        records = records | "Generate" >> Generate(config.generate, vocab)
    if "clean" in config.stages:
        statistics = storage.join(storage.parent(shards_dir), CLEAN_STATISTICS)
        records = records | "Clean" >> Clean(config.clean, vocab["tags"], statistics,
                                          _tagger_thresholds(config, vocab))
    return records


def _tagger_thresholds(config: RunConfig, vocab: dict) -> dict[str, float]:
    """The generating tagger's per-tag thresholds under the run's tag names, the yardstick of the
    no-support rule."""
    if "generate" not in config.stages:
        return {}
    from tagmill.engine.merge import GeneratedTags
    from tagmill.model.checkpoint import read_meta

    meta = read_meta(config.generate.model)
    merge = GeneratedTags(meta["tags"], meta["thresholds"], vocab["tags"], synonyms=vocab.get("synonyms"))
    return merge.tagger_thresholds()


class _MineTerms(beam.CombineFn):
    """Term counts of all captions, merged across workers."""

    def __init__(self, spacy_model: str | None):
        self._spacy_model = spacy_model

    def setup(self):
        self._counter = TermCounter(self._spacy_model)

    def create_accumulator(self) -> TermCounts:
        return TermCounts()

    def add_input(self, counts: TermCounts, captions: list[str]) -> TermCounts:
        return counts.merge(self._counter.count(captions))

    def merge_accumulators(self, accumulators: Iterable[TermCounts]) -> TermCounts:
        merged = TermCounts()
        for counts in accumulators:
            merged.merge(counts)
        return merged

    def extract_output(self, counts: TermCounts) -> TermCounts:
        return counts


def build_mining(pipeline: beam.Pipeline, tasks: list[ShardTask], config: RunConfig, output: str) -> beam.PCollection:
    """The corpus's term counts, for mining a vocabulary when none is given; the index is kept in
    `output` for the run that follows."""
    _, duplicates = pipeline | "Index" >> IndexInput(tasks, storage.join(output, INPUT_INDEX_DIR))
    return (
        _marked_tasks(pipeline, tasks, duplicates)
        | "Captions" >> beam.FlatMap(_shard_captions, max_caption_chars=config.input.max_caption_chars,
                                     repair_text=config.input.repair_text)
        | "CountTerms" >> beam.CombineGlobally(_MineTerms(config.parse.spacy_model))
    )


def _shard_captions(task: ShardTask, max_caption_chars: int, repair_text: bool) -> Iterable[list[str]]:
    """The captions of a shard's usable records, in batches so counting runs over many at once.

    Read by the same checks as the run, so text the run would reject never reaches the term counter.
    """
    batch: list[str] = []
    for record in read_shard(task, max_caption_chars, repair_text):
        if not record.rejected:
            batch.extend(record.captions)
        if len(batch) >= 512:
            yield batch
            batch = []
    if batch:
        yield batch
