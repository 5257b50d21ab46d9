"""The one training loop: shards in, a calibrated tagger checkpoint out, resumable after a crash."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from timm.loss import AsymmetricLossMultiLabel
from torch import nn
from tqdm import tqdm

from tagmill.engine import storage
from tagmill.engine.config import SHIPPED_CONFIGS, ConfigError, load_dataclass
from tagmill.model.checkpoint import (MODEL_FILE, has_training_state, load_tensors, load_training_state, save_tagger,
                                      save_training_state)
from tagmill.model.config import ModelConfig, model_config
from tagmill.model.data import (Batch, SampleDecoder, iterate_batches, make_loader, shard_paths, share_batches,
                                share_shards)
from tagmill.model.distributed import World, launch, launched, process_group
from tagmill.model.factory import sample_decoder
from tagmill.model.evaluate import (THRESHOLD_METHODS, Predictions, calibrate_thresholds, merge_predictions, predict,
                                    tag_metrics)
from tagmill.model.tagger import Tagger
from tagmill.model.vocabulary import shard_captions, shard_vocabulary, split_counts

log = logging.getLogger(__name__)
STATE_DIR = "checkpoints/last"
METRICS_FILE = "metrics.jsonl"
DEFAULT_TRAIN_CONFIG = SHIPPED_CONFIGS / "train" / "tiny.yaml"


@dataclass
class LossConfig:
    gamma_neg: float = 7.0  # RAM's asymmetric loss settings
    gamma_pos: float = 0.0
    clip: float = 0.05


@dataclass
class TrainConfig:
    model: str = "tiny"  # a registered architecture or a model config file
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    accumulate: int = 1  # gradient accumulation steps per optimizer step
    bf16: bool = True  # autocast to bfloat16 on CUDA
    device: str = "auto"  # auto, cpu, cuda
    nproc: int = 1  # processes on this machine training together (DistributedDataParallel), each on its own GPU
    # or on the CPU; batch_size is per process. Under torchrun its processes train, whatever this says
    threads: int | None = None  # torch threads on the CPU while training; null: one per core this process may use
    workers: int = 2  # data loader processes
    holdout: float = 0.1  # share of samples held out for metrics and threshold calibration
    seed: int = 0
    checkpoint_every: int = 200  # optimizer steps between resumable checkpoints
    target_sources: list[str] = field(default_factory=list)  # empty: the final tags; else e.g. ["parsed"]
    text_encoder: str | None = None  # CLIP for models with text queries (see tagmill.model.clip)
    min_support: int = 5  # held-out positives a tag needs for its own threshold
    thresholds: str = "f1"  # f1: best F1 on the held-out tags; mixture: the valley of the tag's scores
    augment: bool = True  # random flips and shifts of training images
    init_from: str | None = None  # a tagger folder whose weights start training (same architecture and tags), or
    # an imported RAM, RAM++ or Tag2Text folder: fine-tuned on the shards' tags, those it lacks added open-set
    descriptions: str | None = None  # RAM++: JSON {"tag": ["description", ...]} for the tags added open-set
    grad_checkpointing: bool = False  # recompute the encoder's activations in the backward pass (Swin-L on one GPU)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        if self.thresholds not in THRESHOLD_METHODS:
            raise ConfigError(f"train.thresholds must be one of {THRESHOLD_METHODS}, not {self.thresholds!r}")
        if self.nproc < 1:
            raise ConfigError(f"train.nproc must be 1 or more, not {self.nproc}")


def load_train_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """A training config file (default: the shipped `train/tiny.yaml`) with `a.b=value` overrides."""
    return load_dataclass(TrainConfig, path or DEFAULT_TRAIN_CONFIG, overrides, "train")


class TaggerWithLoss(nn.Module):
    """Model and loss together, so the loop does not know which loss it runs."""

    def __init__(self, model: Tagger, loss: nn.Module):
        super().__init__()
        self.model, self.loss = model, loss

    def forward(self, images: torch.Tensor, targets: torch.Tensor, captions: list[str] | None = None) -> torch.Tensor:
        features, tokens = self.model.encode(images)
        loss = self.loss(self.model.tag_logits(features, tokens).float(), targets)
        if self.model.caption is not None and captions:
            ids = self.model.caption.encode(self.model.caption_tokenizer, captions).to(images.device)
            states, mask = self.model.caption_context(tokens, targets > 0.5)  # conditioned on the target tags
            loss = loss + self.model.config.caption.weight * self.model.caption.loss(states, mask, ids).float()
        return loss


def pick_device(requested: str) -> torch.device:
    """The requested device; asking for CUDA where there is none falls back to the CPU, loudly."""
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        log.warning("device 'cuda' was asked for but no CUDA GPU is available: running on the CPU")
    return torch.device("cpu")


def train(shards: str | Path, out_dir: str | Path, config: TrainConfig) -> dict | None:
    """Train (or resume) a tagger on the shards; writes the checkpoint, metrics.jsonl and train.json. Shards
    and output may be local folders or URLs (`engine.storage`).

    Under torchrun each process trains on its own share of the shards (DistributedDataParallel); without
    it, `nproc` > 1 starts that many such processes on this machine. The first process returns the
    summary, the others None."""
    if config.nproc > 1 and not launched():
        return launch(config.nproc, train, shards, out_dir, config)
    with process_group(pick_device(config.device)) as world, cpu_threads(config.threads, world.local_size):
        return _train(shards, out_dir, config, world)


@contextlib.contextmanager
def cpu_threads(count: int | None, processes: int = 1):
    """Torch's CPU threads set to `count` for the block, then restored; None: the cores this process may
    use, shared out among the `processes` training on this machine.

    The order in which CPU kernels sum depends on the thread count, and with it the trained weights,
    so training sets the count itself rather than inherit whatever the process set before (the
    embedded Beam runner's inference limits it to `generate.cpu_threads`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count or max(1, _usable_cores() // processes))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _train(shards: str | Path, out_dir: str | Path, config: TrainConfig, world: World) -> dict | None:
    config = replace(config, nproc=world.size)  # the summary records how many processes trained
    torch.manual_seed(world.seed(config.seed))
    out = str(out_dir)
    storage.makedirs(out)
    paths = shard_paths(shards)
    tags = shard_vocabulary(paths)
    model = _initial_model(tags, config, paths)
    if config.grad_checkpointing:
        _checkpoint_activations(model)
    model = model.to(world.device)
    run = _Run(config, model, paths, tags, world, out)
    run.fit()
    return run.finish()


def _initial_model(tags: list[str], config: TrainConfig, paths: list[str]) -> nn.Module:
    """A fresh tagger, a tagger started from `init_from`, or an imported model moved onto the shards' tags."""
    from tagmill.model.checkpoint import read_meta

    if config.init_from and read_meta(config.init_from)["config"].get("family", "tagger") != "tagger":
        from tagmill.model.ram.retag import start_from_model
        from tagmill.model.vocabulary import shard_synonyms

        model, added = start_from_model(config.init_from, tags, shard_synonyms(paths), config.text_encoder,
                                        config.descriptions)
        if added:
            log.warning("%d of the shards' tags are new to %s, added open-set: %s", len(added), config.init_from,
                        ", ".join(added[:10]))
        return model
    model = _new_model(model_config(config.model), tags, config, paths)
    if config.init_from:
        _load_initial_weights(model, tags, config.init_from)
    return model


def _checkpoint_activations(model: nn.Module) -> None:
    """Gradient checkpointing in every timm backbone of the model (the Swin of the RAM families)."""
    for module in model.modules():
        if hasattr(module, "set_grad_checkpointing") and module is not model:
            module.set_grad_checkpointing(True)


def _new_model(architecture: ModelConfig, tags: list[str], config: TrainConfig, paths: list[str]) -> Tagger:
    tokenizer = None
    if architecture.caption.enabled:
        from tagmill.model.caption import train_tokenizer

        tokenizer = train_tokenizer(shard_captions(paths), architecture.caption.vocabulary)
    text = None
    if architecture.head.queries == "text":
        from tagmill.model.clip import text_embeddings

        if not config.text_encoder:
            raise ValueError(f"model {architecture.name!r} scores tags by their text: set text_encoder")
        text = text_embeddings(config.text_encoder, tags)
    return Tagger(architecture, len(tags), text, tokenizer)


def _load_initial_weights(model: Tagger, tags: list[str], folder: str) -> None:
    """Start from a trained tagger of the same architecture and tags (a bootstrapped round's last model)."""
    from tagmill.model.checkpoint import CheckpointError, load_tagger

    start, start_tags = load_tagger(folder)
    if start_tags != tags or start.config.name != model.config.name:
        raise CheckpointError(f"init_from {folder}: a {start.config.name} tagger of {len(start_tags)} tags cannot "
                              f"start a {model.config.name} tagger of these shards' {len(tags)} tags")
    model.load_state_dict(start.state_dict())


class _Run:
    """One training run's state: model, optimizer, schedule, data, and where it writes.

    On several processes the model trains under DistributedDataParallel, each process on its own share
    of the shards (`data.share_shards`) in as many batches as every other. Every process loads the same
    checkpoint to resume; the first alone writes checkpoints, metrics and the model, and evaluates on
    the held-out predictions of every process's shards."""

    def __init__(self, config: TrainConfig, model: Tagger, paths: list[str], tags: list[str], world: World,
                 out: str):
        self.config, self.model, self.tags, self.world, self.out = config, model, tags, world, out
        self.device = world.device
        loss = AsymmetricLossMultiLabel(gamma_neg=config.loss.gamma_neg, gamma_pos=config.loss.gamma_pos,
                                        clip=config.loss.clip)
        self.wrapped = world.synchronized(TaggerWithLoss(model, loss))
        self.optimizer = torch.optim.AdamW(_parameter_groups(model, config.weight_decay), lr=config.lr)
        counts = split_counts(paths, "train", config.holdout)
        self.train_samples = sum(counts)
        if self.train_samples == 0:
            raise ValueError(f"no training samples in {len(paths)} shards")
        self.share = share_shards(paths, counts, world.size, config.batch_size)[world.rank]
        self.total_steps = math.ceil(self.share.batches / config.accumulate) * config.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _warmup_cosine(config.warmup_steps,
                                                                                          self.total_steps))
        self.state = {"epoch": 0, "batches_done": 0, "step": 0, "skipped": 0}
        self.skipped_uncounted = 0  # this process's skipped samples not yet in state["skipped"]
        self.metrics = _read_metrics(storage.join(out, METRICS_FILE))
        self._resume()

    def _decoder(self, train: bool) -> SampleDecoder:
        return sample_decoder(self.model.config, self.tags, tuple(self.config.target_sources),
                              augment=train and self.config.augment)

    def _resume(self) -> None:
        folder = storage.join(self.out, STATE_DIR)
        if not has_training_state(folder):
            return
        self.model.load_state_dict(load_tensors(storage.join(folder, MODEL_FILE)))
        self.state = load_training_state(folder, self.optimizer, self.scheduler)
        if self.world.main:
            log.warning("resuming from %s at epoch %d, step %d", folder, self.state["epoch"], self.state["step"])

    def fit(self) -> None:
        for epoch in range(self.state["epoch"], self.config.epochs):
            self._epoch(epoch)
            metrics = self._evaluate(epoch)
            self.state.update(epoch=epoch + 1, batches_done=0)
            self._checkpoint()
            if self.world.main:
                self._write_metrics(metrics)

    def _write_metrics(self, metrics: dict) -> None:
        """metrics.jsonl with this epoch's line added, written whole (an object store cannot append)."""
        self.metrics += json.dumps(metrics) + "\n"
        storage.write_text(storage.join(self.out, METRICS_FILE), self.metrics)

    def _epoch(self, epoch: int) -> None:
        self.model.train()
        seed = self.world.seed(self.config.seed * 1000 + epoch)
        random.seed(seed)  # augmentation in this process (workers: 0); workers seed their own
        bar = tqdm(total=self.share.samples, desc=f"epoch {epoch + 1}/{self.config.epochs}", unit="img",
                   mininterval=1.0, disable=None if self.world.main else True)
        started = time.perf_counter()
        for index, batch in enumerate(self._train_batches(seed)):
            bar.update(len(batch.keys))
            if index < self.state["batches_done"]:
                continue  # already trained on before the interruption
            loss = self._step(batch, index)
            bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{bar.n / (time.perf_counter() - started):.0f}")
        if self.state["batches_done"] % self.config.accumulate:
            self._optimizer_step()  # the epoch's last, partial accumulation group
        bar.close()

    def _train_batches(self, seed: int) -> Iterator[Batch]:
        """This process's training batches of an epoch: in a world of one, batched by the loader's workers."""
        decoder = self._decoder(train=True)
        if self.world.size > 1:
            return share_batches(self.share, decoder, self.config.holdout, self.config.workers, seed)
        return iterate_batches(make_loader(self.share.shards, decoder, self.config.batch_size, "train",
                                           self.config.holdout, self.config.workers, shuffle_seed=seed))

    def _step(self, batch, index: int) -> float:
        autocast = self.config.bf16 and self.device.type == "cuda"
        with self._gradient_sync(index):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = self.wrapped(batch.images.to(self.device), batch.targets.to(self.device), batch.captions)
            (loss / self.config.accumulate).backward()
        self.state["batches_done"] = index + 1
        self.skipped_uncounted += batch.skipped
        if (index + 1) % self.config.accumulate == 0:
            self._optimizer_step()
        return float(loss.detach())

    def _gradient_sync(self, index: int):
        """No gradient all-reduce before the last batch of an accumulation group (or of the epoch)."""
        last = (index + 1) % self.config.accumulate == 0 or index + 1 == self.share.batches
        if last or self.world.size == 1:
            return contextlib.nullcontext()
        return self.wrapped.no_sync()

    def _optimizer_step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.state["step"] += 1
        if self.state["step"] % self.config.checkpoint_every == 0:
            self._checkpoint()

    def _count_skipped(self) -> None:
        """Every process's skipped samples since the last count into the state (all processes at once)."""
        self.state["skipped"] += self.world.sum(self.skipped_uncounted)
        self.skipped_uncounted = 0

    def _checkpoint(self) -> None:
        self._count_skipped()
        if not self.world.main:
            return
        folder = storage.join(self.out, STATE_DIR)
        save_tagger(self.model, folder, self.tags)
        save_training_state(folder, self.optimizer, self.scheduler, self.state)

    def _holdout_predictions(self) -> Predictions | None:
        """Predictions on the held-out samples of every process's shards, in the first process (None in the
        others)."""
        self.world.align_buffers(self.model)  # every process predicts with the model the first one saves
        loader = make_loader(self.share.shards, self._decoder(train=False), self.config.batch_size * 2, "holdout",
                             self.config.holdout, self.config.workers)
        autocast = self.config.bf16 and self.device.type == "cuda"
        found = predict(self.model, loader, self.device, autocast)
        if self.world.size == 1:
            return found
        parts = self.world.gather(found)
        return merge_predictions(parts) if self.world.main else None

    def _evaluate(self, epoch: int) -> dict | None:
        found = self._holdout_predictions()
        if found is None:
            return None
        metrics = tag_metrics(found.scores, found.targets, self.model.thresholds.cpu().numpy(), self.tags)
        metrics.pop("per_tag")
        return {"epoch": epoch + 1, "step": self.state["step"], "lr": self.scheduler.get_last_lr()[0], **metrics}

    def _uncalibrated_thresholds(self) -> float | np.ndarray:
        """What a tag with too few held-out positives keeps: an imported model's own threshold, else the default."""
        if isinstance(self.model, Tagger):
            return self.model.config.default_threshold
        return self.model.thresholds.cpu().numpy()

    def finish(self) -> dict | None:
        """Calibrate thresholds on the held-out split, write the final checkpoint and its summary (the first
        process; the others return None)."""
        found = self._holdout_predictions()
        self._count_skipped()
        if found is None:
            return None
        thresholds = calibrate_thresholds(found.scores, found.targets, self._uncalibrated_thresholds(),
                                          self.config.min_support, method=self.config.thresholds)
        self.model.thresholds.copy_(torch.from_numpy(thresholds))
        metrics = tag_metrics(found.scores, found.targets, thresholds, self.tags)
        summary = {"holdout": {k: v for k, v in metrics.items() if k != "per_tag"}, "tags": len(self.tags),
                   "train_samples": self.train_samples, "skipped_samples": self.state["skipped"],
                   "steps": self.state["step"], "config": asdict(self.config)}
        save_tagger(self.model, self.out, self.tags, {"train": summary})
        storage.write_text(storage.join(self.out, "train.json"), json.dumps(summary, indent=1) + "\n")
        return summary


def _read_metrics(path: str) -> str:
    """The lines of metrics.jsonl so far: those of the epochs before a resumed run's."""
    return storage.read_text(path) if storage.is_file(path) else ""


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases (Tag2Text's per-tag bias is a row), norms and the label queries."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        exempt = parameter.ndim < 2 or name.endswith((".bias", "queries.learned", "labels.queries"))
        (no_decay if exempt else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _warmup_cosine(warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        progress = (step - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return factor

