"""Checkpoints: tensors in safetensors, everything else in JSON. Loading never unpickles.

A model folder holds `model.safetensors` and `tagger.json` (architecture with its family, vocabulary,
thresholds): a trained tagger, or an official RAM, RAM++ or Tag2Text model imported into this format
(`tagmill import-model`); `load_model` loads either.
A training state folder adds `optimizer.safetensors` and `state.json` (optimizer hyper-parameters,
scheduler, epoch and step), enough to resume exactly. Folders may be local or URLs (`engine.storage`);
every file is written whole or not at all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load, load_file, save
from torch import nn

from tagmill.engine import storage
from tagmill.model.config import model_config
from tagmill.model.factory import build_model
from tagmill.model.ram.config import FAMILY_NAMES
from tagmill.model.tagger import Tagger

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
META_FILE = "tagger.json"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, incomplete, or for another architecture."""


def save_tagger(model: nn.Module, folder: str | Path, tags: list[str], extra: dict[str, Any] | None = None) -> None:
    """A trained model's folder: a tagger with its text width and caption tokenizer, any other family as it is."""
    if not isinstance(model, Tagger):
        return save_model(model, folder, tags, extra)
    meta = {"text_dim": _text_dim(model), **(extra or {})}
    if model.caption_tokenizer is not None:
        meta["caption_tokenizer"] = model.caption_tokenizer.to_str()
    save_model(model, folder, tags, meta)


def save_model(model: nn.Module, folder: str | Path, tags: list[str], extra: dict[str, Any] | None = None) -> None:
    """A model of any family: its weights, and its architecture, tags and thresholds in JSON."""
    if len(tags) != model.num_tags:
        raise ValueError(f"{len(tags)} tag names for a model of {model.num_tags} tags")
    storage.makedirs(folder)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT_VERSION, "config": model.config.to_dict(), "tags": list(tags),
            "thresholds": model.thresholds.tolist(), **(extra or {})}
    save_tensors(storage.join(folder, MODEL_FILE), state)
    storage.write_text(storage.join(folder, META_FILE), json.dumps(meta, indent=1) + "\n")


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    storage.write_bytes(path, save(tensors))


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors on the CPU: a local file memory-mapped, any other read whole."""
    if storage.is_local(path):
        return load_file(str(path))
    return load(storage.read_bytes(path))


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, list[str]]:
    """Any model folder (a trained tagger, an imported RAM, RAM++ or Tag2Text model) in eval mode,
    and its tag names; a clear CheckpointError for anything that does not fit."""
    return _load(folder, read_meta(folder), device)


def load_tagger(folder: str | Path, device: str | torch.device = "cpu") -> tuple[Tagger, list[str]]:
    """The tagger and its tag names; a clear CheckpointError for anything that does not fit."""
    meta = read_meta(folder)
    family = meta["config"].get("family", "tagger")
    if family != "tagger":
        raise CheckpointError(f"{folder} holds an imported {FAMILY_NAMES.get(family, family)} model, "
                              f"which this command does not take (`tagmill tag` does)")
    return _load(folder, meta, device)


def _load(folder: str | Path, meta: dict[str, Any], device: str | torch.device) -> tuple[nn.Module, list[str]]:
    """The model a folder's metadata describes (a tagger's text width and caption tokenizer included), its
    weights loaded."""
    config = model_config(meta["config"])
    text_dim = meta.get("text_dim")
    text = torch.zeros(len(meta["tags"]), text_dim) if text_dim else None
    tokenizer = None
    if meta.get("caption_tokenizer"):
        from tagmill.model.caption import load_tokenizer

        tokenizer = load_tokenizer(meta["caption_tokenizer"])
    try:
        model = build_model(config, len(meta["tags"]), text, tokenizer)
    except ValueError as err:
        raise CheckpointError(f"{folder}: {err}") from None
    _load_weights(model, folder, config.name)
    return model.to(device).eval(), list(meta["tags"])


def _load_weights(model: nn.Module, folder: str | Path, name: str) -> None:
    state = load_tensors(storage.join(folder, MODEL_FILE))
    missing, unexpected = _mismatch(model, state)
    if missing or unexpected:
        raise CheckpointError(f"{folder} does not fit architecture {name!r}: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{folder} does not fit architecture {name!r}: {str(err)[:300]}") from None


def read_meta(folder: str | Path) -> dict[str, Any]:
    if not {MODEL_FILE, META_FILE} <= storage.list_names(folder):
        raise CheckpointError(f"{folder} is not a tagger checkpoint (needs {MODEL_FILE} and {META_FILE})")
    meta = json.loads(storage.read_text(storage.join(folder, META_FILE)))
    if meta.get("format", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{folder} was written by a newer tagmill (format {meta['format']})")
    return meta


def _mismatch(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)


def _text_dim(model: Tagger) -> int | None:
    return model.queries.text_embeddings.shape[1] if model.queries.open_set else None


# ---- training state ------------------------------------------------------------------------

def save_training_state(folder: str | Path, optimizer: torch.optim.Optimizer, scheduler, state: dict) -> None:
    """Optimizer tensors into safetensors, its hyper-parameters, the scheduler and `state` into JSON."""
    storage.makedirs(folder)
    optimizer_state = optimizer.state_dict()
    tensors = {f"{index}.{name}": value.detach().contiguous().cpu()
               for index, slots in optimizer_state["state"].items() for name, value in slots.items()
               if isinstance(value, torch.Tensor)}
    meta = {"param_groups": optimizer_state["param_groups"], "scheduler": scheduler.state_dict(), **state}
    save_tensors(storage.join(folder, OPTIMIZER_FILE), tensors)
    storage.write_text(storage.join(folder, STATE_FILE), json.dumps(meta, indent=1))


def has_training_state(folder: str | Path) -> bool:
    return storage.is_file(storage.join(folder, STATE_FILE))


def load_training_state(folder: str | Path, optimizer: torch.optim.Optimizer, scheduler) -> dict:
    meta = json.loads(storage.read_text(storage.join(folder, STATE_FILE)))
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_tensors(storage.join(folder, OPTIMIZER_FILE)).items():
        index, name = key.split(".", 1)
        slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta.pop("param_groups")})
    scheduler.load_state_dict(meta.pop("scheduler"))
    return meta
