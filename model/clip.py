"""CLIP from open_clip: text embeddings of tag names (open-set queries, cleaning) and image embeddings.

A CLIP is named in one of three ways, and nothing is ever downloaded:
- `ARCH`, an open_clip architecture or one of `configs/clip/*.json`, randomly initialised (tests only);
- `ARCH:WEIGHTS`, with WEIGHTS a checkpoint file (e.g. `ViT-B-32:/models/openai.bin`; a URL is fetched
  once into a local cache) or one of open_clip's pretrained tags for ARCH (e.g. `ViT-B-32:openai`, loaded
  from open_clip's cache);
- a folder written by `tagmill train-clip` (`clip.json` naming its architecture, `model.safetensors`), a
  local path or a URL (`engine.storage`).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import open_clip
import torch

from tagmill.engine import storage
from tagmill.engine.config import SHIPPED_CONFIGS
from tagmill.engine.images import decode_rgb

CLIP_CONFIGS = SHIPPED_CONFIGS / "clip"
PROMPTS = ("a photo of a {}.", "a picture of a {}.")
FOLDER_META = "clip.json"
FOLDER_WEIGHTS = "model.safetensors"
log = logging.getLogger(__name__)


def create_clip(arch: str) -> tuple[torch.nn.Module, object, object]:
    """A randomly initialised CLIP of a known architecture, its image transform and its tokenizer."""
    if (CLIP_CONFIGS / f"{arch}.json").is_file():
        open_clip.add_model_config(CLIP_CONFIGS / f"{arch}.json")
    if arch not in open_clip.list_models():
        raise ValueError(f"unknown CLIP architecture {arch!r}")
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    return model, preprocess, open_clip.get_tokenizer(arch)


@lru_cache(maxsize=2)
def load_clip(spec: str) -> tuple[torch.nn.Module, object, object]:
    """The CLIP model (eval mode, CPU), its image transform and its tokenizer."""
    if _names_a_folder(spec):
        return _load_folder(spec)
    arch, _, weights = spec.partition(":")
    if storage.is_url(weights):
        weights = storage.local_path(weights)
    if weights and not Path(weights).is_file():
        if weights in open_clip.list_pretrained_tags_by_model(arch):
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights)
            return model.eval(), preprocess, open_clip.get_tokenizer(arch)
        raise FileNotFoundError(f"CLIP weights {weights} are neither a file nor a pretrained tag of {arch}")
    model, preprocess, tokenizer = create_clip(arch)
    if weights:
        open_clip.load_checkpoint(model, weights)
    else:
        log.warning("CLIP %s has no weights: randomly initialised", arch)
    return model.eval(), preprocess, tokenizer


def _names_a_folder(spec: str) -> bool:
    """A folder's path or URL, not `ARCH:WEIGHTS` (whose weights may be a URL: `ViT-B-32:s3://...`)."""
    scheme = spec.partition("://")[0] if storage.is_url(spec) else ""
    return ":" not in scheme and storage.is_dir(spec)


def _load_folder(folder: str) -> tuple[torch.nn.Module, object, object]:
    from tagmill.model.checkpoint import load_tensors

    if not {FOLDER_META, FOLDER_WEIGHTS} <= storage.list_names(folder):
        raise FileNotFoundError(f"{folder} is not a CLIP folder (needs {FOLDER_META} and {FOLDER_WEIGHTS})")
    arch = json.loads(storage.read_text(storage.join(folder, FOLDER_META)))["arch"]
    model, preprocess, tokenizer = create_clip(arch)
    model.load_state_dict(load_tensors(storage.join(folder, FOLDER_WEIGHTS)))
    return model.eval(), preprocess, tokenizer


@torch.no_grad()
def text_embeddings(spec: str, tags: list[str], prompts: tuple[str, ...] = PROMPTS) -> torch.Tensor:
    """One unit-length embedding per tag, averaged over the prompt templates."""
    model, _, tokenizer = load_clip(spec)
    return embed_texts(model, tokenizer, tags, prompts)


def embed_texts(model, tokenizer, tags: list[str], prompts: tuple[str, ...]) -> torch.Tensor:
    device = next(model.parameters()).device
    per_prompt = [model.encode_text(tokenizer([p.format(t) for t in tags]).to(device)).float() for p in prompts]
    mean = torch.stack([torch.nn.functional.normalize(e, dim=-1) for e in per_prompt]).mean(0)
    return torch.nn.functional.normalize(mean, dim=-1)


class ClipEmbedder:
    """A CLIP on its device: unit image embeddings of encoded images, and their similarity to tags."""

    def __init__(self, spec: str, tags: list[str], prompts: tuple[str, ...] = PROMPTS, device: str = "auto"):
        from tagmill.model.train import pick_device

        self.device = pick_device(device)
        model, self.preprocess, tokenizer = load_clip(spec)
        self.model = model.to(self.device)
        with torch.no_grad():
            self.tag_embeddings = embed_texts(self.model, tokenizer, tags, prompts)  # (tags, dim), cached

    @torch.no_grad()
    def embed(self, encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """Unit image embeddings (images, dim) and their cosine similarities to every tag (images, tags)."""
        images = torch.stack([self.preprocess(decode_rgb(data)) for data in encoded])
        features = self.model.encode_image(images.to(self.device)).float()
        features = torch.nn.functional.normalize(features, dim=-1)
        return features.cpu().numpy(), (features @ self.tag_embeddings.T).cpu().numpy()
