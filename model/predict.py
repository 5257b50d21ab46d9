"""Tagging a few image files with a saved tagger."""

from __future__ import annotations

import torch
from PIL import Image

from tagmill.engine.images import upright
from tagmill.model.checkpoint import load_tagger
from tagmill.model.data import SampleDecoder


@torch.no_grad()
def tag_images(model_dir: str, paths: list[str]) -> list[list[tuple[str, float]]]:
    """Per image, the tags scoring at or above their thresholds, highest first, with their scores."""
    model, tags = load_tagger(model_dir)
    config = model.config
    decoder = SampleDecoder({}, config.image_size, config.mean, config.std)
    images = []
    for path in paths:
        with Image.open(path) as opened:
            images.append(decoder.transform(upright(opened).convert("RGB")))
    scores = torch.sigmoid(model(torch.stack(images)))
    above = scores >= model.thresholds
    return [sorted(((tags[i], float(row[i])) for i in range(len(tags)) if hit[i]), key=lambda x: -x[1])
            for row, hit in zip(scores, above)]
