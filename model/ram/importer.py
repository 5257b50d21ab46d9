"""`tagmill import-model`: an official RAM, RAM++ or Tag2Text checkpoint to a tagmill model folder.

The file is read with `torch.load(weights_only=True)`, so nothing in it can run: a file that would
need arbitrary unpickling is refused. Its architecture is read from its shapes (`infer.py`), every
key is accounted for (`keys.py`: mapped onto tagmill's modules, a Swin buffer tagmill recomputes,
or the captioning branch), and anything that does not fit is one error naming what differs.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tagmill.engine import storage
from tagmill.engine.vocab import read_tag_list
from tagmill.model.checkpoint import CheckpointError, save_model, save_tensors
from tagmill.model.ram.config import FAMILY_NAMES, RamConfig
from tagmill.model.ram.families import RamTagger, build_family_model
from tagmill.model.ram.infer import ShapeError, State, infer_config
from tagmill.model.ram.keys import (
    CAPTION_PREFIXES,
    HEAD_PREFIX,
    OLD_HEAD_PREFIX,
    RECOMPUTED_SUFFIXES,
    caption_branch_shapes,
    model_keys,
    official_shapes,
)
from tagmill.model.ram.swin import resize_position_table, table_window

CAPTION_BRANCH_FILE = "caption_branch.safetensors"
_FAMILY_MARKERS = [("reweight_scale", "ram_plus"), ("fc.W", "tag2text"), ("label_embed.weight", "tag2text"),
                   ("image_proj.weight", "ram")]  # keys only one family has, most telling first


@dataclass
class ImportSummary:
    config: RamConfig
    tags: int
    notes: list[str] = field(default_factory=list)  # what was recomputed, interpolated, kept or left unused


def import_checkpoint(checkpoint: str | Path, family: str, out: str | Path, tags_file: str | Path | None = None,
                      thresholds_file: str | Path | None = None, head_heads: int = 4) -> ImportSummary:
    """Read, check and convert an official checkpoint; write the model folder `out` (paths or URLs)."""
    state = read_official_state(checkpoint)
    check_family(state, family, checkpoint)
    tags = _tags(tags_file, state, family)
    thresholds = read_thresholds(thresholds_file, len(tags)) if thresholds_file else None
    try:
        config = infer_config(state, family, len(tags), head_heads)
    except ShapeError as err:
        raise CheckpointError(f"{checkpoint}: {err}") from None
    model = build_family_model(config, len(tags)).eval()
    notes = load_official_weights(model, state, str(checkpoint))
    if thresholds is not None:
        model.thresholds.copy_(torch.tensor(thresholds))
    notes.append(_keep_caption_branch(state, config, out))
    kept = CAPTION_BRANCH_FILE if storage.is_file(storage.join(out, CAPTION_BRANCH_FILE)) else None
    save_model(model, out, list(tags), {"imported_from": {"file": storage.name(checkpoint), "caption_branch": kept,
                                                          "notes": notes}})
    return ImportSummary(config, len(tags), notes)


# ---- reading ---------------------------------------------------------------------------------

def read_official_state(path: str | Path) -> State:
    """The state dict of an official file (`{"model": state_dict}` or a bare state dict), official key
    names, the tagging head under its current name."""
    loaded = _load_plain_tensors(path)
    state = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{path} holds no state dict (neither a 'model' entry nor tensors by name)")
    odd = next((key for key, value in state.items() if not isinstance(value, torch.Tensor)), None)
    if odd is not None:
        raise CheckpointError(f"{path}: {odd!r} is not a tensor, so this is no model state dict")
    return {_current_name(key): value for key, value in state.items()}


def _load_plain_tensors(path: str | Path):
    if not storage.is_file(path):
        raise FileNotFoundError(f"no checkpoint file {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols; the outcome is what counts
            return _torch_load(path)
    except pickle.UnpicklingError as err:
        raise CheckpointError(_refusal(path, err)) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as err:
        raise CheckpointError(_unreadable(path, err)) from None


def _torch_load(path: str | Path):
    """Tensors and plain containers only; a local file memory-mapped where its format allows it, any other
    read whole."""
    if not storage.is_local(path):
        return torch.load(io.BytesIO(storage.read_bytes(path)), map_location="cpu", weights_only=True)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def _refusal(path: str | Path, err: Exception) -> str:
    text = str(err)
    if "Weights only load failed" not in text:
        return _unreadable(path, err)
    called = re.search(r"GLOBAL ([\w.]+)", text)
    refused = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    what = f"it calls {called.group(1)}" if called else (refused.group(1).strip() if refused else "not plain tensors")
    return (f"{path} is refused: it holds more than plain tensors ({what}) and loading it could run code; "
            "nothing in it was run")


def _unreadable(path: str | Path, err: Exception) -> str:
    reason = (str(err).strip().splitlines() or [""])[0].split(". ")[0][:120]
    detail = f"{type(err).__name__}: {reason}" if reason and not reason.strip("'").isdigit() else type(err).__name__
    return f"{path} is truncated or not a PyTorch checkpoint ({detail})"


def _current_name(key: str) -> str:
    return HEAD_PREFIX + key[len(OLD_HEAD_PREFIX):] if key.startswith(OLD_HEAD_PREFIX) else key


def check_family(state: State, family: str, path: str | Path) -> None:
    """A clear error when the file is of another family than the one asked for."""
    found = next(((key, owner) for key, owner in _FAMILY_MARKERS if key in state), None)
    if found is None:
        raise CheckpointError(f"{path} is not a RAM, RAM++ or Tag2Text checkpoint (none of "
                              f"{', '.join(key for key, _ in _FAMILY_MARKERS)})")
    key, owner = found
    if owner != family:
        raise CheckpointError(f"{path} is a {FAMILY_NAMES[owner]} checkpoint (it has {key}), not "
                              f"{FAMILY_NAMES[family]}: import it with --family {owner}")


def _tags(tags_file: str | Path | None, state: State, family: str) -> tuple[str, ...]:
    """The tag names, as many as the checkpoint scores (RAM++: as many as its description groups)."""
    if not tags_file:
        raise CheckpointError(f"--tags is needed: the {FAMILY_NAMES[family]} checkpoint scores its tags by position "
                              "only, their names come from the official tag list")
    tags = read_tag_list(tags_file)
    key = "label_embed.weight" if family == "tag2text" else "label_embed"
    scored = state[key].shape[0] if key in state else len(tags)
    if family != "ram_plus" and scored != len(tags):
        raise CheckpointError(f"{tags_file} names {len(tags)} tags; the checkpoint scores {scored} ({key})")
    return tags


def read_thresholds(path: str | Path, count: int) -> list[float]:
    """One threshold per line, in tag order (RAM's `ram_tag_list_threshold.txt`)."""
    lines = [line.strip() for line in storage.read_text(path).splitlines() if line.strip()]
    if len(lines) != count:
        raise CheckpointError(f"{path} has {len(lines)} thresholds for {count} tags")
    try:
        values = [float(line) for line in lines]
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from None
    if not all(0.0 <= value <= 1.0 for value in values):
        raise CheckpointError(f"{path}: thresholds are probabilities, between 0 and 1")
    return values


# ---- checking and converting -------------------------------------------------------------------

def load_official_weights(model: RamTagger, state: State, where: str) -> list[str]:
    """Copy the official tensors into the model after checking every key and shape; what was
    recomputed or interpolated, as notes."""
    expected = {**official_shapes(model), **caption_branch_shapes(model.config.caption_branch)}
    _check_keys(state, expected, model, where)
    own, tables, mapped = model.state_dict(), [], {}
    for name, official in model_keys(model).items():
        tensor = state[official]
        if tensor.shape != own[name].shape:  # only a relative-position table gets here (see _check_keys)
            tensor = resize_position_table(tensor, table_window(own[name].shape[0]))
            tables.append(official)
        mapped[name] = tensor
    model.load_state_dict({**mapped, "thresholds": model.thresholds})
    recomputed = sum(key.endswith(RECOMPUTED_SUFFIXES) for key in state)
    notes = [f"recomputed {recomputed} Swin buffers (relative_position_index, attn_mask)"] if recomputed else []
    if tables:
        notes.append(f"interpolated {len(tables)} relative-position tables to windows of "
                     f"{model.config.swin.window} (or a smaller stage's grid)")
    return notes


def _check_keys(state: State, expected: dict[str, tuple[int, ...]], model: RamTagger, where: str) -> None:
    """One error naming the first keys that are missing, unexpected or of another shape."""
    missing, unexpected, misshapen = _differences(state, expected)
    parts = ([f"missing {_listed(missing)}"] if missing else []) + \
            ([f"unexpected {_listed(unexpected)}"] if unexpected else []) + \
            [f"{key} is {tuple(state[key].shape)} in the file, {expected[key]} for these sizes"
             for key in misshapen[:2]]
    if parts:
        raise CheckpointError(f"{where} does not fit a {FAMILY_NAMES[model.config.family]} model: " + "; ".join(parts))


def _differences(state: State, expected: dict[str, tuple[int, ...]]) -> tuple[list[str], list[str], list[str]]:
    """Keys missing from the file (recomputed buffers may be), keys it has no place for, and keys whose
    shape differs (a position table of another window is interpolated instead)."""
    optional = {key for key in expected if key.endswith(RECOMPUTED_SUFFIXES)}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    misshapen = [key for key in sorted((set(expected) & set(state)) - optional)
                 if tuple(state[key].shape) != expected[key] and not _is_other_window(key, state, expected)]
    return missing, unexpected, misshapen


def _is_other_window(key: str, state: State, expected: dict[str, tuple[int, ...]]) -> bool:
    """A relative-position table made for another window: the same heads, interpolated on import."""
    return key.endswith("relative_position_bias_table") and state[key].shape[1:] == expected[key][1:]


def _listed(keys: list[str]) -> str:
    return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _keep_caption_branch(state: State, config: RamConfig, out: str | Path) -> str:
    """Tag2Text's captioning branch is kept beside the model (official names) for its tag-guided
    captions; RAM's is reported as not used."""
    branch = {key: value for key, value in state.items() if key.startswith(CAPTION_PREFIXES)}
    storage.remove(storage.join(out, CAPTION_BRANCH_FILE))  # from an earlier import into the same folder
    if not branch:
        return "no captioning branch in the file"
    if config.family != "tag2text":
        return f"captioning branch not used ({len(branch)} tensors of tag_encoder, text_decoder)"
    storage.makedirs(out)
    copies = {key: value.detach().clone().contiguous() for key, value in branch.items()}  # tied weights share memory
    save_tensors(storage.join(out, CAPTION_BRANCH_FILE), copies)
    return f"captioning branch kept in {CAPTION_BRANCH_FILE} ({len(branch)} tensors)"
