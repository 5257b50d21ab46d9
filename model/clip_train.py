"""`tagmill train-clip`: a small open_clip model trained contrastively on a shard set's image–caption pairs.

For worlds where no pretrained CLIP can be had (the offline demo, the tests); real users point
`clean.clip` at real weights instead. The result is a folder `load_clip` reads.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from open_clip.loss import ClipLoss
from tqdm import tqdm

from tagmill.engine import storage
from tagmill.engine.config import SHIPPED_CONFIGS, load_dataclass
from tagmill.engine.images import decode_rgb
from tagmill.model.clip import FOLDER_META, FOLDER_WEIGHTS, create_clip
from tagmill.model.data import EXTENSIONS, iterate_batches, make_loader, shard_paths
from tagmill.model.train import pick_device

DEFAULT_CLIP_TRAIN_CONFIG = SHIPPED_CONFIGS / "train" / "tiny-clip.yaml"
log = logging.getLogger(__name__)


@dataclass
class ClipTrainConfig:
    arch: str = "tiny-clip"  # an open_clip architecture or one of configs/clip/*.json
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    workers: int = 1
    seed: int = 0
    device: str = "auto"


def load_clip_train_config(path: str | Path | None, overrides: list[str] = ()) -> ClipTrainConfig:
    """A train-clip config file (default: the shipped `train/tiny-clip.yaml`) with `a.b=value` overrides."""
    return load_dataclass(ClipTrainConfig, path or DEFAULT_CLIP_TRAIN_CONFIG, overrides, "train-clip")


@dataclass
class CaptionDecoder:
    """A shard sample to (image tensor, caption tokens, key); one of its captions, picked at random."""

    preprocess: object
    tokenizer: object

    def __call__(self, sample: dict):
        try:
            captions = json.loads(sample["json"]).get("captions") or []
            data = next(sample[ext] for ext in sample if ext in EXTENSIONS)
            image = self.preprocess(decode_rgb(data))
        except (KeyError, ValueError, OSError, SyntaxError, StopIteration):
            return None
        if not captions:
            return None
        return image, self.tokenizer([random.choice(captions)])[0], sample["__key__"]


def save_clip(model: torch.nn.Module, arch: str, folder: str | Path, extra: dict | None = None) -> None:
    """The CLIP folder `load_clip` reads, a local path or a URL: weights first, `clip.json` last."""
    from tagmill.model.checkpoint import save_tensors

    storage.makedirs(folder)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_tensors(storage.join(folder, FOLDER_WEIGHTS), weights)
    meta = {"arch": arch, **(extra or {})}
    storage.write_text(storage.join(folder, FOLDER_META), json.dumps(meta, indent=1) + "\n")


def train_clip(shards: str | Path, out_dir: str | Path, config: ClipTrainConfig) -> dict:
    """Contrastive training over every sample of the shards; writes the CLIP folder and returns a summary."""
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    device = pick_device(config.device)
    model, preprocess, tokenizer = create_clip(config.arch)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = ClipLoss()
    paths, decoder = shard_paths(shards), CaptionDecoder(preprocess, tokenizer)
    losses, seen = [], 0
    for epoch in range(config.epochs):
        loader = make_loader(paths, decoder, config.batch_size, "train", 0.0, config.workers,
                             shuffle_seed=config.seed * 1000 + epoch)
        total = 0.0
        batches = 0
        for batch in tqdm(iterate_batches(loader), desc=f"clip epoch {epoch + 1}/{config.epochs}", disable=None):
            if len(batch.keys) < 2:
                continue  # a contrastive step needs negatives
            image_features, text_features, scale = model(batch.images.to(device), batch.targets.to(device))
            loss = loss_fn(image_features, text_features, scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, batches, seen = total + float(loss.detach()), batches + 1, seen + len(batch.keys)
        losses.append(round(total / max(batches, 1), 4))
    summary = {"arch": config.arch, "samples_seen": seen, "epoch_losses": losses, "config": asdict(config)}
    save_clip(model, config.arch, out_dir, {"train": summary})
    return summary
