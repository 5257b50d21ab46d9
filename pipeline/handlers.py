"""Beam `ModelHandler`s: the tagger (Generate) and the CLIP image embedder (Clean).

Each takes a record's encoded image and returns one numpy row per image; Beam's RunInference
batches the images, loads the model once per worker process, and keys results by record with
`KeyedModelHandler`. Models come from local paths only.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult


class _ImageModelHandler(ModelHandler[bytes, np.ndarray, Any]):
    """Shared plumbing: batch size, CPU threads, and one prediction row per image."""

    namespace = "tagmill"

    def __init__(self, device: str, batch_size: int, cpu_threads: int):
        super().__init__()
        self._device, self._batch_size, self._cpu_threads = device, batch_size, cpu_threads

    def _limit_threads(self) -> None:
        import torch

        torch.set_num_threads(self._cpu_threads)  # worker processes share the machine's cores

    def run_inference(self, batch: Sequence[bytes], model: Any,
                      inference_args: dict[str, Any] | None = None) -> Iterable[PredictionResult]:
        images = list(batch)
        padding = [images[0]] * (self._batch_size - len(images))  # a short batch is filled up to the fixed size
        rows = self._predict(model, images + padding)[:len(images)]
        return [PredictionResult(None, row) for row in rows]

    def _predict(self, model: Any, images: list[bytes]) -> Sequence[Any]:
        """One output row per image."""
        raise NotImplementedError

    def batch_elements_kwargs(self) -> dict[str, int]:
        # Batches of one fixed size: CPU kernels pick their algorithm by batch size, and a small batch
        # (a bundle's last) would score its images a rounding error apart from a full one. Filled up to
        # this size, an image scores the same whichever images share its batch, so resumed runs repeat.
        return {"min_batch_size": self._batch_size, "max_batch_size": self._batch_size}

    def get_metrics_namespace(self) -> str:
        return self.namespace


class TaggerHandler(_ImageModelHandler):
    """A tagger checkpoint: per image, the probability of every tag of the model, and a caption when asked."""

    namespace = "tagmill_generate"

    def __init__(self, model_dir: str, device: str = "auto", batch_size: int = 64, cpu_threads: int = 1,
                 bf16: bool = True, captions: bool = False):
        super().__init__(device, batch_size, cpu_threads)
        self._model_dir, self._bf16, self._captions = model_dir, bf16, captions

    def load_model(self):
        from tagmill.model.predict import LoadedTagger

        self._limit_threads()
        return LoadedTagger(self._model_dir, self._device, self._bf16)

    def _predict(self, model, images: list[bytes]) -> list[tuple[np.ndarray, str | None]]:
        scores, captions = model.predict(images, self._captions)
        return list(zip(scores, captions or [None] * len(images)))


class ClipHandler(_ImageModelHandler):
    """A CLIP: per image, its unit embedding and its similarity to every tag of the vocabulary."""

    namespace = "tagmill_clean"

    def __init__(self, spec: str, tags: list[str], prompts: list[str], device: str = "auto", batch_size: int = 64,
                 cpu_threads: int = 1):
        super().__init__(device, batch_size, cpu_threads)
        self._spec, self._tags, self._prompts = spec, tags, tuple(prompts)

    def load_model(self):
        from tagmill.model.clip import ClipEmbedder

        self._limit_threads()
        return ClipEmbedder(self._spec, self._tags, self._prompts, self._device)

    def _predict(self, model, images: list[bytes]) -> list[tuple[np.ndarray, np.ndarray]]:
        embeddings, similarities = model.embed(images)
        return list(zip(embeddings, similarities))
