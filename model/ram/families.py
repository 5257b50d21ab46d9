"""RAM, RAM++ and Tag2Text: a Swin image encoder, one query per tag, the cross-attention tagging
head, and a classifier per tag.

The families differ in where a tag's query comes from and how its logit is read:
- RAM: a fixed embedding per tag (in the official model, CLIP text embeddings of the tag name),
  projected to the head's width through a ReLU; the image tokens are projected to the embeddings'
  width; one linear classifier shared by all tags.
- RAM++: several embeddings per tag (of LLM-written descriptions of it), averaged per image with
  weights from a softmax over their similarity to the image (a learned temperature), then as RAM.
- Tag2Text: a learned query per tag attending to the unprojected image tokens, and a group-wise
  linear classifier (a weight vector and bias per tag).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tagmill.model.ram.config import RamConfig
from tagmill.model.ram.head import TaggingHead
from tagmill.model.ram.swin import SwinEncoder


class ProjectedTagEmbeddings(nn.Module):
    """RAM's queries: one embedding per tag, projected to the head's width, ReLU."""

    def __init__(self, num_tags: int, embed_dim: int, hidden: int):
        super().__init__()
        self.embeddings = nn.Parameter(torch.zeros(num_tags, embed_dim))
        self.project = nn.Linear(embed_dim, hidden) if hidden != embed_dim else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        queries = F.relu(self.project(self.embeddings))
        return queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)


class WeightedDescriptionEmbeddings(nn.Module):
    """RAM++'s queries: per image, each tag's description embeddings averaged by their softmax
    similarity to the image's (projected, normalized) mean token, then projected as RAM's."""

    def __init__(self, num_tags: int, descriptions: int, embed_dim: int, hidden: int):
        super().__init__()
        self.descriptions = descriptions
        self.embeddings = nn.Parameter(torch.zeros(num_tags * descriptions, embed_dim))
        self.scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # log of the softmax's inverse temperature
        self.project = nn.Linear(embed_dim, hidden) if hidden != embed_dim else nn.Identity()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        image = tokens[:, 0] / tokens[:, 0].norm(dim=-1, keepdim=True)
        similarity = self.scale.exp() * image @ self.embeddings.T
        weights = similarity.unflatten(1, (-1, self.descriptions)).softmax(dim=-1)  # (batch, tags, descriptions)
        per_tag = torch.einsum("btd,tde->bte", weights, self.embeddings.unflatten(0, (-1, self.descriptions)))
        return F.relu(self.project(per_tag))


class LearnedTagQueries(nn.Module):
    """Tag2Text's queries: a learned vector per tag."""

    def __init__(self, num_tags: int, hidden: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_tags, hidden) * 0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)


class SharedClassifier(nn.Module):
    """RAM's logit: one linear map of the head's state, the same for every tag."""

    def __init__(self, hidden: int):
        super().__init__()
        self.linear = nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.linear(states).squeeze(-1)


class GroupWiseLinear(nn.Module):
    """Query2Label's (and Tag2Text's) logit: a weight vector and a bias per tag."""

    def __init__(self, num_tags: int, hidden: int):
        super().__init__()
        bound = 1 / math.sqrt(hidden)
        self.weight = nn.Parameter(torch.empty(1, num_tags, hidden).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(1, num_tags).uniform_(-bound, bound))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return (states * self.weight).sum(-1) + self.bias


class RamTagger(nn.Module):
    """A model of the RAM family: images in, one logit per tag out; per-tag thresholds travel
    with the weights. Its inference surface (`encode`, `tag_logits`, `thresholds`, `caption`) is
    the tagger's, so whatever scores images with a tagger scores them with it."""

    caption = None  # the official captioning branch is kept beside the weights, not built into the model

    def __init__(self, config: RamConfig, num_tags: int):
        super().__init__()
        self.config = config
        self.encoder = SwinEncoder(config.image_size, config.swin)
        self.image_proj = nn.Linear(self.encoder.dim, config.embed_dim) if config.projects_image else None
        self.labels = _tag_queries(config, num_tags)
        self.head = TaggingHead(config.head, config.context_width)
        hidden = config.head.hidden
        self.classifier = GroupWiseLinear(num_tags, hidden) if config.family == "tag2text" else SharedClassifier(hidden)
        self.register_buffer("thresholds", torch.full((num_tags,), config.default_threshold))

    @property
    def num_tags(self) -> int:
        return len(self.thresholds)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tag_logits(*self.encode(images))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's tokens (mean first) and the tokens the head attends to (RAM: projected)."""
        features = self.encoder(images)
        return features, (self.image_proj(features) if self.image_proj is not None else features)

    def head_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """The tagging head's last hidden states, (batch, tags, hidden), before the classifier."""
        return self.head(self.labels(tokens), tokens)

    def tag_logits(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head_states(tokens))


def _tag_queries(config: RamConfig, num_tags: int) -> nn.Module:
    hidden = config.head.hidden
    if config.family == "tag2text":
        return LearnedTagQueries(num_tags, hidden)
    if config.family == "ram_plus":
        return WeightedDescriptionEmbeddings(num_tags, config.descriptions_per_tag, config.embed_dim, hidden)
    return ProjectedTagEmbeddings(num_tags, config.embed_dim, hidden)


def build_family_model(config: RamConfig, num_tags: int) -> RamTagger:
    return RamTagger(config, num_tags)
