"""A saved model scoring batches of encoded images: `tagmill tag`, and the pipeline's Generate stage.

Any model folder works: a trained tagger or an imported RAM, RAM++ or Tag2Text model (`load_model`),
each with the preprocessing its architecture wants (`image_transform`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tagmill.engine import storage
from tagmill.engine.images import decode_rgb
from tagmill.model.checkpoint import load_model
from tagmill.model.factory import image_transform
from tagmill.model.train import pick_device

TAG_BATCH = 16  # images per forward pass of `tagmill tag`
GPU_DECODE_THREADS = 8  # threads decoding and resizing a batch's JPEGs while a GPU waits for them


class LoadedTagger:
    """A checkpoint on its device, in eval mode, with the preprocessing its architecture wants."""

    def __init__(self, model_dir: str | Path, device: str = "auto", bf16: bool = True):
        self.device = pick_device(device)
        self.model, self.tags = load_model(model_dir, self.device)
        self.model.eval()
        self.transform = image_transform(self.model.config)
        self.thresholds = self.model.thresholds.cpu().numpy()
        self.autocast = bf16 and self.device.type == "cuda"
        # Pillow releases the GIL while it decodes and resizes, so threads keep a GPU fed; the pixels are
        # the same whichever thread makes them. On the CPU the cores belong to torch (and to other workers).
        threads = GPU_DECODE_THREADS if self.device.type == "cuda" else 1
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None

    def preprocess(self, encoded: bytes) -> torch.Tensor:
        return self.transform(decode_rgb(encoded))

    def scores(self, encoded: list[bytes]) -> np.ndarray:
        """(images, tags) probabilities."""
        return self.predict(encoded, captions=False)[0]

    def predict(self, encoded: list[bytes], captions: bool) -> tuple[np.ndarray, list[str] | None]:
        """(images, tags) probabilities and, when asked, the caption head's captions conditioned on the
        tags predicted above their thresholds."""
        logits, written = self._forward(encoded, captions)
        return sigmoid_by_row(logits).cpu().numpy(), written

    def predict_logits(self, encoded: list[bytes], captions: bool) -> tuple[np.ndarray, list[str] | None]:
        """(images, tags) float32 tag logits before the sigmoid and, when asked, the captions."""
        logits, written = self._forward(encoded, captions)
        return logits.cpu().numpy(), written

    @torch.no_grad()
    def _forward(self, encoded: list[bytes], captions: bool) -> tuple[torch.Tensor, list[str] | None]:
        if captions and self.model.caption is None:
            raise ValueError("this tagger has no caption head (train one whose model config enables caption)")
        pixels = self._pool.map(self.preprocess, encoded) if self._pool else map(self.preprocess, encoded)
        batch = torch.stack(list(pixels)).to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            features, tokens = self.model.encode(batch)
            logits = self.model.tag_logits(features, tokens).float()
            if not captions:
                return logits, None
            states, mask = self.model.caption_context(tokens, sigmoid_by_row(logits) >= self.model.thresholds)
            return logits, self.model.caption.generate(self.model.caption_tokenizer, states, mask)


def sigmoid_by_row(logits: torch.Tensor) -> torch.Tensor:
    """The sigmoid of each image's logits on their own. Vectorized kernels compute a tensor's last elements
    by another path, a last bit apart; over a whole batch, an image's scores would then depend on its place
    in the batch, and a resumed run would not repeat them. Row by row, every image takes the same paths."""
    return torch.stack([torch.sigmoid(row) for row in logits])


@dataclass
class TaggedImages:
    tags: list[list[tuple[str, float]]]  # per image, the tags at or above their thresholds, highest score first
    captions: list[str | None]  # per image, the caption head's caption where the model has one
    logits: np.ndarray  # (images, tags) float32 tag logits before the sigmoid, in the model's tag order


def tag_image_files(model_dir: str, paths: list[str]) -> TaggedImages:
    """Tags, captions and raw logits of image files (paths or URLs), on the CPU, a batch at a time."""
    tagger = LoadedTagger(model_dir, device="cpu")
    captions = tagger.model.caption is not None
    logits, written = [], []
    for start in range(0, len(paths), TAG_BATCH):
        encoded = [storage.read_bytes(path) for path in paths[start:start + TAG_BATCH]]
        batch_logits, batch_captions = tagger.predict_logits(encoded, captions)
        logits.append(batch_logits)
        written += batch_captions or [None] * len(encoded)
    logits = np.concatenate(logits).astype(np.float32)
    scores = torch.sigmoid(torch.from_numpy(logits)).numpy()
    tags = [sorted(((tagger.tags[i], float(row[i])) for i in np.flatnonzero(row >= tagger.thresholds)),
                   key=lambda x: -x[1]) for row in scores]
    return TaggedImages(tags, written, logits)
