"""The tagging head of RAM, RAM++ and Tag2Text: BERT layers with cross-attention only.

One query per tag attends to the image tokens; there is no self-attention between tags (Query2Label's
simplification, which keeps thousands of tags affordable). Each layer is post-norm as BERT's:
`norm(x + attention(x))`, then `norm(x + feed_forward(x))` with an exact (erf) GELU.

transformers' `BertLayer` cannot be reused for this: it always runs self-attention first, allows
cross-attention only in a causal decoder, and its cross-attention keys and values take the
query's width, where RAM's take the image tokens' (512 against 768).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tagmill.model.ram.config import TaggingHeadConfig


class CrossAttention(nn.Module):
    """Queries attend to a context of another width; the output is added back and normalized."""

    def __init__(self, hidden: int, context: int, heads: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(context, hidden)
        self.value = nn.Linear(context, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        attended = F.scaled_dot_product_attention(self._split(self.query(queries)), self._split(self.key(context)),
                                                  self._split(self.value(context)))
        attended = attended.transpose(1, 2).flatten(2)
        return self.norm(queries + self.out(attended))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, length, width) to (batch, heads, length, width / heads)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)


class FeedForward(nn.Module):
    """BERT's intermediate and output blocks: widen, GELU, narrow, add back and normalize."""

    def __init__(self, hidden: int, intermediate: int, eps: float):
        super().__init__()
        self.up = nn.Linear(hidden, intermediate)
        self.down = nn.Linear(intermediate, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.down(F.gelu(self.up(x))))


class TaggingLayer(nn.Module):
    def __init__(self, config: TaggingHeadConfig, context: int):
        super().__init__()
        self.attention = CrossAttention(config.hidden, context, config.heads, config.layer_norm_eps)
        self.feed_forward = FeedForward(config.hidden, config.intermediate, config.layer_norm_eps)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.attention(queries, context))


class TaggingHead(nn.Module):
    """Tag queries (batch, tags, hidden) and image tokens (batch, tokens, context) to the last hidden states."""

    def __init__(self, config: TaggingHeadConfig, context: int):
        super().__init__()
        self.layers = nn.ModuleList(TaggingLayer(config, context) for _ in range(config.layers))

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            queries = layer(queries, context)
        return queries
