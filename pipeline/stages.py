"""The model stages as composite transforms: Generate (the tagger) and Clean (CLIP + FAISS).

Records travel through RunInference as the keys of their own images, so results need no join;
a batch whose inference fails turns its records into rejects, nothing is dropped.
"""

from __future__ import annotations

from typing import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference

from tagmill.engine.config import GenerateConfig
from tagmill.engine.merge import GeneratedTags
from tagmill.engine.records import Record, Reject
from tagmill.pipeline.handlers import TaggerHandler
from tagmill.pipeline.transforms import NAMESPACE


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

    def __init__(self, config: GenerateConfig, vocabulary: list[str]):
        super().__init__()
        self._config, self._vocabulary = config, vocabulary

    def expand(self, records):
        config = self._config
        handler = TaggerHandler(config.model, config.device, config.batch_size, config.cpu_threads, config.bf16)
        rows, rejects = records | "Tagger" >> _InferRecords(handler, "generate")
        merged = rows | "Merge" >> beam.ParDo(_MergeGenerated(config.model, self._vocabulary))
        return (merged, rejects) | "Records" >> beam.Flatten()


class _MergeGenerated(beam.DoFn):
    def __init__(self, model_dir: str, vocabulary: list[str]):
        self._model_dir, self._vocabulary = model_dir, vocabulary

    def setup(self):
        from tagmill.model.checkpoint import read_meta

        meta = read_meta(self._model_dir)
        self._merge = GeneratedTags(meta["tags"], meta["thresholds"], self._vocabulary)
        self._generated = Metrics.counter(NAMESPACE, "tags_generated")

    def process(self, item: tuple) -> Iterator[Record]:
        record, scores = item
        self._generated.inc(self._merge.merge(record, scores))
        yield record
