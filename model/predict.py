"""A saved tagger scoring batches of encoded images: `tagmill tag`, and the pipeline's Generate stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tagmill.engine.images import decode_rgb
from tagmill.model.checkpoint import load_tagger
from tagmill.model.data import SampleDecoder
from tagmill.model.train import pick_device


class LoadedTagger:
    """A checkpoint on its device, in eval mode, with the preprocessing its architecture wants."""

    def __init__(self, model_dir: str | Path, device: str = "auto", bf16: bool = True):
        self.device = pick_device(device)
        self.model, self.tags = load_tagger(model_dir, self.device)
        self.model.eval()
        config = self.model.config
        self.decoder = SampleDecoder({}, config.image_size, config.mean, config.std)
        self.thresholds = self.model.thresholds.cpu().numpy()
        self.autocast = bf16 and self.device.type == "cuda"

    def preprocess(self, encoded: bytes) -> torch.Tensor:
        return self.decoder.transform(decode_rgb(encoded))

    def scores(self, encoded: list[bytes]) -> np.ndarray:
        """(images, tags) probabilities."""
        return self.predict(encoded, captions=False)[0]

    @torch.no_grad()
    def predict(self, encoded: list[bytes], captions: bool) -> tuple[np.ndarray, list[str] | None]:
        """(images, tags) probabilities and, when asked, the caption head's captions conditioned on the
        tags predicted above their thresholds."""
        if captions and self.model.caption is None:
            raise ValueError("this tagger has no caption head (train one whose model config enables caption)")
        batch = torch.stack([self.preprocess(data) for data in encoded]).to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            features, tokens = self.model.encode(batch)
            scores = torch.sigmoid(self.model.tag_logits(features, tokens).float())
            if not captions:
                return scores.cpu().numpy(), None
            states, mask = self.model.caption_context(tokens, scores >= self.model.thresholds)
            return scores.cpu().numpy(), self.model.caption.generate(self.model.caption_tokenizer, states, mask)


def tag_images(model_dir: str, paths: list[str]) -> list[tuple[list[tuple[str, float]], str | None]]:
    """Per image, the tags scoring at or above their thresholds (highest first, with their scores) and,
    when the tagger has a caption head, its caption."""
    tagger = LoadedTagger(model_dir, device="cpu")
    encoded = [Path(path).read_bytes() for path in paths]
    scores, captions = tagger.predict(encoded, captions=tagger.model.caption is not None)
    captions = captions or [None] * len(paths)
    tags = [sorted(((tagger.tags[i], float(row[i])) for i in np.flatnonzero(row >= tagger.thresholds)),
                   key=lambda x: -x[1]) for row in scores]
    return list(zip(tags, captions))
