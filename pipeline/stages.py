"""The model stages as composite transforms: Generate (the tagger) and Clean (CLIP + FAISS).

Records travel through RunInference as the keys of their own images, so results need no join;
a batch whose inference fails turns its records into rejects, nothing is dropped.
"""

from __future__ import annotations

from typing import Iterator

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from tagmill.engine import storage
from tagmill.engine.clean import (Candidate, CleanRules, TagClusters, TagStatistics, decide, fit_tag_statistics,
                                  kmeans_on_gpu, load_statistics, sample_priority, save_statistics)
from tagmill.engine.config import CleanConfig, GenerateConfig
from tagmill.engine.merge import GeneratedTags
from tagmill.engine.parse.parser import CaptionParser
from tagmill.engine.records import Record, Reject, TagSource
from tagmill.engine.vocab import Vocabulary
from tagmill.pipeline.handlers import ClipHandler, TaggerHandler
from tagmill.pipeline.transforms import NAMESPACE, parsed_tags


class _InferRecords(beam.PTransform):
    """(record, model output row) for every usable record; rejects pass by, failures become rejects."""

    def __init__(self, handler: ModelHandler, step: str):
        super().__init__()
        self._handler, self._step = handler, step

    def expand(self, records):
        usable, rejected = records | "SplitRejected" >> beam.Partition(lambda r, _: int(r.rejected), 2)
        results, failed = (
            usable
            | "KeyImages" >> beam.Map(lambda r: (r, r.image))
            | "Infer" >> RunInference(KeyedModelHandler(self._handler)).with_exception_handling()
        )
        rows = results | "Rows" >> beam.MapTuple(lambda record, result: (record, result.inference))
        failures = failed.failed_inferences | "RejectFailed" >> beam.FlatMap(_reject_batch, self._step)
        return rows, (rejected, failures) | "Rejects" >> beam.Flatten()


def _reject_batch(failure: tuple, step: str) -> Iterator[Record]:
    batch, error = failure
    message = f"{step} failed on its batch: {error[1] if isinstance(error, tuple) else error}"[:500]
    for record, _ in batch:
        Metrics.counter(NAMESPACE, f"rejected_{Reject.INFERENCE_FAILED}").inc()
        yield record.reject(Reject.INFERENCE_FAILED, message)


class Generate(beam.PTransform):
    """The tagger's tags above their thresholds join the parsed ones; every candidate gets its score."""

    def __init__(self, config: GenerateConfig, vocabulary: dict):
        super().__init__()
        self._config, self._vocabulary = config, vocabulary

    def expand(self, records):
        config = self._config
        handler = TaggerHandler(config.model, config.device, config.batch_size, config.cpu_threads, config.bf16,
                                config.captions)
        rows, rejects = records | "Tagger" >> _InferRecords(handler, "generate")
        merged = rows | "Merge" >> beam.ParDo(_MergeGenerated(config.model, self._vocabulary, config.margin))
        return (merged, rejects) | "Records" >> beam.Flatten()


class _MergeGenerated(beam.DoFn):
    """The tagger's tags and scores join the record; a generated caption is parsed like the others."""

    def __init__(self, model_dir: str, vocabulary: dict, margin: float):
        self._model_dir, self._vocabulary, self._margin = model_dir, vocabulary, margin

    def setup(self):
        from tagmill.model.checkpoint import read_meta

        meta = read_meta(self._model_dir)
        self._merge = GeneratedTags(meta["tags"], meta["thresholds"], self._vocabulary["tags"], self._margin,
                                    self._vocabulary.get("synonyms"))
        self._parser = CaptionParser(Vocabulary.from_json(self._vocabulary))
        self._generated = Metrics.counter(NAMESPACE, "tags_generated")

    def process(self, item: tuple) -> Iterator[Record]:
        record, (scores, caption) = item
        if caption:  # first, so the tagger scores the caption's tags too
            record.generated_caption = caption
            known = set(record.candidate_tags())
            for source in parsed_tags(self._parser, [caption]):
                if source.tag not in known:
                    record.tags.append(TagSource(source.tag, "generated", caption=-1, text=source.text))
        self._generated.inc(self._merge.merge(record, scores))
        yield record


class Clean(beam.PTransform):
    """CLIP scores every candidate tag; per-tag statistics are fitted on bounded samples; the rules decide.

    The statistics are saved to `statistics_path` before any record is judged, and a rerun into the
    same output (a resume) judges its remaining records by the saved ones, as the first run did.
    With both CLIP rules off, no CLIP runs and only the tagger's support is judged.
    """

    def __init__(self, config: CleanConfig, vocabulary: list[str], statistics_path: str,
                 tagger_thresholds: dict[str, float] | None = None):
        super().__init__()
        self._config, self._vocabulary, self._statistics_path = config, vocabulary, statistics_path
        self._tagger_thresholds = tagger_thresholds or {}

    def expand(self, records):
        decide = _Decide(self._config.rules, self._tagger_thresholds)
        if not self._config.rules.uses_clip:
            return (records | "NoEmbedding" >> beam.Map(lambda record: (record, None))
                    | "Decide" >> beam.ParDo(decide, None))
        rows, rejects = records | "Clip" >> _InferRecords(self._clip_handler(), "clean")
        scored = rows | "Similarity" >> beam.Map(_score_similarity, {t: i for i, t in enumerate(self._vocabulary)})
        cleaned = scored | "Decide" >> beam.ParDo(decide, beam.pvalue.AsSingleton(self._statistics(scored)))
        return (cleaned, rejects) | "Records" >> beam.Flatten()

    def _clip_handler(self) -> ClipHandler:
        config = self._config
        return ClipHandler(config.clip, self._vocabulary, config.prompts, config.device, config.batch_size,
                           config.cpu_threads)

    def _statistics(self, scored):
        """The path of the saved per-tag statistics: fitted now, or those of the run being resumed."""
        if storage.is_file(self._statistics_path):
            return scored.pipeline | "SavedStatistics" >> beam.Create([self._statistics_path])
        rules = self._config.rules
        return (
            scored
            | "TagSamples" >> beam.FlatMap(_tag_samples, rules.seed)
            | "BoundedSample" >> beam.combiners.Top.PerKey(rules.sample_per_tag, key=lambda item: -item[0])
            | "FitTags" >> beam.ParDo(_FitTag(rules, self._config.device))
            | "AllTags" >> beam.combiners.ToDict()
            | "SaveStatistics" >> beam.Map(_save, self._statistics_path)
        )


def _save(statistics: dict, path: str) -> str:
    save_statistics(statistics, path)
    return path


def _score_similarity(item: tuple, index: dict[str, int]) -> tuple[Record, np.ndarray]:
    record, (embedding, similarities) = item
    for tag in record.candidate_tags():
        if tag in index:
            record.score(tag, "clip", similarities[index[tag]])
    return record, embedding


def _tag_samples(item: tuple, seed: int) -> Iterator[tuple]:
    """(tag, (rank, similarity, embedding)) per candidate: the lowest ranks form each tag's sample."""
    record, embedding = item
    half = embedding.astype(np.float16)  # half the memory of a tag's sample
    for tag, scores in record.scores.items():
        if "clip" in scores:
            yield tag, (sample_priority(record.id, tag, seed), scores["clip"], half)


class _FitTag(beam.DoFn):
    def __init__(self, rules: CleanRules, device: str):
        self._rules, self._device = rules, device

    def setup(self):
        import faiss

        faiss.omp_set_num_threads(1)  # deterministic sums; workers, not threads, share the cores
        self._gpu = kmeans_on_gpu(self._device)

    def process(self, item: tuple) -> Iterator[tuple]:
        tag, sample = item
        similarities = np.array([s for _, s, _ in sample], dtype=np.float32)
        embeddings = np.stack([e for _, _, e in sample]).astype(np.float32)
        yield tag, fit_tag_statistics(similarities, embeddings, self._rules, self._gpu)


class _Decide(beam.DoFn):
    """Each record's outlier distances and the rules' drops, with their scores and thresholds."""

    def __init__(self, rules: CleanRules, tagger_thresholds: dict[str, float]):
        self._rules, self._tagger_thresholds = rules, tagger_thresholds
        self._loaded: tuple | None = None

    def process(self, item: tuple, statistics_path: str | None) -> Iterator[Record]:
        record, embedding = item
        statistics, clusters = self._load(statistics_path) if statistics_path else ({}, None)
        tags = [tag for tag in record.candidate_tags() if clusters and tag in clusters.rows]
        if tags:
            distances = clusters.distances(embedding[None, :], np.zeros(len(tags), dtype=np.int64), tags)
            for tag, distance in zip(tags, distances):
                record.score(tag, "outlier", distance)
        parsed = {t.tag for t in record.tags if t.source == "parsed"}
        candidates = [Candidate(tag, tag in parsed, tagger_threshold=self._tagger_thresholds.get(tag),
                                **record.scores.get(tag, {})) for tag in record.candidate_tags()]
        for drop in decide(candidates, statistics, self._rules):
            record.dropped[drop.tag] = {"rule": drop.rule, "score": float(drop.score), "threshold": float(drop.threshold)}
            Metrics.counter(NAMESPACE, f"dropped_{drop.rule}").inc()
        yield record

    def _load(self, path: str) -> tuple[dict[str, TagStatistics], TagClusters]:
        if self._loaded is None or self._loaded[0] != path:
            statistics = load_statistics(path)
            self._loaded = (path, statistics, TagClusters(statistics))
        return self._loaded[1], self._loaded[2]
