"""A RAM, RAM++ or Tag2Text model moved onto another tag list: the start of fine-tuning on a run's shards,
or an imported model with tags added (`tagmill add-tags`).

Tags the model knows (by name, then by the run's synonyms) keep their learned embeddings or queries,
classifier rows and thresholds. Tags it does not know are added open-set, from a CLIP text encoder
(the official models' is ViT-B-16): RAM embeds the tag name (prompt templates averaged, unit
length), as the official tag embeddings were built; RAM++ embeds each of the tag's descriptions
into its own slot, cycling through them to fill the model's slots per tag, so the per-image
weighting over descriptions works as it does on the trained tags (the name's embedding in every slot
where no description is given). Tag2Text's queries are learned, not embedded: its added tags start
at random, for fine-tuning to learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tagmill.engine import storage
from tagmill.engine.merge import match_tags
from tagmill.model.clip import embed_texts, load_clip
from tagmill.model.ram.config import RamConfig
from tagmill.model.ram.families import RamTagger, build_family_model

PER_TAG_DIM = {"labels.embeddings": 0, "labels.queries": 0, "classifier.weight": 1, "classifier.bias": 1,
               "thresholds": 0}  # the tensors with one row per tag, and which dimension holds the rows
NAME_PROMPTS = ("a photo of a {}.", "a picture of a {}.", "an image of a {}.")  # for tags without descriptions


def read_descriptions(path: str | Path | None) -> dict[str, list[str]]:
    """JSON `{"tag": ["description", ...]}` (RAM++'s LLM tag descriptions), checked."""
    if not path:
        return {}
    data = json.loads(storage.read_text(path))
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(d, str) and d.strip() for d in v)
                                             for v in data.values()):
        raise ValueError(f"{path}: descriptions must be a JSON object of tag -> list of non-empty strings")
    return {tag: list(values) for tag, values in data.items() if values}


def retag(model: RamTagger, model_tags: list[str], tags: list[str], synonyms: dict | None = None,
          text_encoder: str | None = None, descriptions: dict[str, list[str]] | None = None
          ) -> tuple[RamTagger, list[str]]:
    """A model of the same architecture over `tags`, and the tags added open-set."""
    match = match_tags(model_tags, tags, synonyms)
    position = {tag: i for i, tag in enumerate(tags)}
    new_rows, old_rows = [position[t] for t in match.columns], list(match.columns.values())
    fresh = build_family_model(model.config, len(tags))
    state = fresh.state_dict()
    for key, value in model.state_dict().items():
        state[key] = _moved(key, value, state[key], new_rows, old_rows, _slots(model.config, key))
    added = match.vocabulary_only
    if added and model.config.family != "tag2text":
        rows = torch.tensor([position[t] for t in added])
        embeddings = added_tag_embeddings(model.config, added, text_encoder, descriptions or {})
        slots = model.config.descriptions_per_tag
        state["labels.embeddings"][_expanded(rows, slots)] = embeddings.to(state["labels.embeddings"].dtype)
    fresh.load_state_dict(state)
    return fresh.to(next(model.parameters()).device), added


def _slots(config: RamConfig, key: str) -> int:
    return config.descriptions_per_tag if key == "labels.embeddings" else 1


def _moved(key: str, old: torch.Tensor, new: torch.Tensor, new_rows: list[int], old_rows: list[int],
           slots: int) -> torch.Tensor:
    """A shared tensor as it was; a per-tag one with each kept tag's rows copied to its new place."""
    if key not in PER_TAG_DIM:
        return old
    dim = PER_TAG_DIM[key]
    moved = new.clone()
    moved.index_copy_(dim, _expanded(torch.tensor(new_rows, dtype=torch.long), slots),
                      old.index_select(dim, _expanded(torch.tensor(old_rows, dtype=torch.long), slots)))
    return moved


def _expanded(rows: torch.Tensor, slots: int) -> torch.Tensor:
    """Tag rows to the rows of their slots (RAM++ keeps `slots` description embeddings per tag)."""
    return (rows[:, None] * slots + torch.arange(slots)[None, :]).reshape(-1)


def added_tag_embeddings(config: RamConfig, tags: list[str], text_encoder: str | None,
                         descriptions: dict[str, list[str]]) -> torch.Tensor:
    """(tags × slots, embed_dim) unit embeddings for tags the model was not trained on."""
    if not text_encoder:
        raise ValueError(f"{len(tags)} tags are not the model's ({', '.join(tags[:5])}): adding them open-set needs "
                         "a CLIP text encoder (text_encoder: ViT-B-16:/path/open_clip_pytorch_model.bin)")
    clip, _, tokenizer = load_clip(text_encoder)
    with torch.no_grad():
        names = embed_texts(clip, tokenizer, tags, NAME_PROMPTS)
        rows = [_tag_slots(clip, tokenizer, name, descriptions.get(tag), config.descriptions_per_tag)
                for tag, name in zip(tags, names)]
    embeddings = torch.cat(rows)
    if embeddings.shape[1] != config.embed_dim:
        raise ValueError(f"CLIP {text_encoder} embeds text in {embeddings.shape[1]} dimensions; {config.name} "
                         f"takes tag embeddings of {config.embed_dim} (the official models: ViT-B-16's 512)")
    return embeddings


def _tag_slots(clip, tokenizer, name: torch.Tensor, descriptions: list[str] | None, slots: int) -> torch.Tensor:
    """One tag's slots: its descriptions' embeddings, cycled to fill them (RAM++), or its name's in each
    (RAM, which has one slot and was built from names; a RAM++ tag without descriptions)."""
    if not descriptions or slots == 1:
        return name[None, :].expand(slots, -1)
    described = embed_texts(clip, tokenizer, descriptions, ("{}",))
    return described[torch.arange(slots) % len(descriptions)]


def start_from_model(folder: str | Path, tags: list[str], synonyms: dict | None = None,
                     text_encoder: str | None = None, descriptions_file: str | None = None
                     ) -> tuple[RamTagger, list[str]]:
    """An imported (or fine-tuned) model folder over the shards' tags, for fine-tuning."""
    from tagmill.model.checkpoint import load_model

    model, model_tags = load_model(folder)
    return retag(model, model_tags, tags, synonyms, text_encoder, read_descriptions(descriptions_file))


def add_tags(folder: str | Path, new_tags: list[str], out: str | Path, text_encoder: str,
             descriptions_file: str | None = None) -> list[str]:
    """Write `out`: the model of `folder` scoring its own tags and `new_tags` too (open-set). Returns
    the tags added (those it did not have already)."""
    from tagmill.model.checkpoint import load_model, save_model

    model, model_tags = load_model(folder)
    tags = list(dict.fromkeys([*model_tags, *new_tags]))
    extended, added = retag(model, model_tags, tags, None, text_encoder, read_descriptions(descriptions_file))
    save_model(extended, out, tags)
    return added
