"""CLIP from open_clip, for open-set label queries: text embeddings of tag names.

A CLIP is named `ARCH` or `ARCH:WEIGHTS`, where ARCH is an open_clip architecture or one of
`configs/clip/*.json`, and WEIGHTS a local file; nothing is downloaded. Without weights the model
is randomly initialised, which only tests and the tiny demo configs should rely on.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import open_clip
import torch

CLIP_CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "clip"
PROMPTS = ("a photo of a {}.", "a picture of a {}.")
log = logging.getLogger(__name__)


@lru_cache(maxsize=2)
def load_clip(spec: str) -> tuple[torch.nn.Module, object]:
    """The CLIP model (eval mode, CPU) and its tokenizer."""
    arch, _, weights = spec.partition(":")
    if (CLIP_CONFIGS / f"{arch}.json").is_file():
        open_clip.add_model_config(CLIP_CONFIGS / f"{arch}.json")
    if arch not in open_clip.list_models():
        raise ValueError(f"unknown CLIP architecture {arch!r}")
    if weights and not Path(weights).is_file():
        raise FileNotFoundError(f"CLIP weights {weights} do not exist")
    if not weights:
        log.warning("CLIP %s has no weights: randomly initialised", arch)
    model = open_clip.create_model(arch, pretrained=weights or None)
    return model.eval(), open_clip.get_tokenizer(arch)


@torch.no_grad()
def text_embeddings(spec: str, tags: list[str], prompts: tuple[str, ...] = PROMPTS) -> torch.Tensor:
    """One unit-length embedding per tag, averaged over the prompt templates."""
    model, tokenizer = load_clip(spec)
    per_prompt = [model.encode_text(tokenizer([p.format(t) for t in tags])).float() for p in prompts]
    mean = torch.stack([torch.nn.functional.normalize(e, dim=-1) for e in per_prompt]).mean(0)
    return torch.nn.functional.normalize(mean, dim=-1)
