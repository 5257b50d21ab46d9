"""The Tag2Text/RAM-style tagger: an image encoder and a Query2Label-style tagging head.

Each tag is a query that attends to the image tokens through a few cross-attention layers (no
self-attention between labels, as in RAM's head, so thousands of tags stay affordable); a weight
vector per tag (Query2Label's group-wise linear) turns each query into its logit, to which a
per-tag linear score of the pooled image features is added. Queries and
weights are learned per tag, or projections of CLIP text embeddings of the tag names, which makes
the tagger open-set: a tag never seen in training is scored from its name's embedding, and
`add_tags` extends a trained model.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from tagmill.engine import storage
from tagmill.model.config import ModelConfig


class ImageEncoder(nn.Module):
    """A timm backbone whose final feature map (or token sequence) is returned as tokens."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        encoder = config.encoder
        stage = encoder.feature_stage
        options = {"features_only": True, "out_indices": [stage]} if stage is not None else {"num_classes": 0}
        checkpoint = storage.local_path(encoder.pretrained_path or "")  # a URL is fetched: timm reads files
        self.backbone = timm.create_model(encoder.name, pretrained=False, checkpoint_path=checkpoint,
                                          **options, **encoder.kwargs)
        self.staged = stage is not None
        self.dim = self.backbone.feature_info.channels()[-1] if self.staged else self.backbone.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.backbone(images)[-1] if self.staged else self.backbone.forward_features(images)
        if features.ndim == 4:  # a CNN's (B, C, H, W) map: one token per position
            features = features.flatten(2).transpose(1, 2)
        return features


class CrossAttentionLayer(nn.Module):
    """Queries attend to image tokens, then a feed-forward block; pre-norm residuals."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm_query = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(self.norm_query(queries), tokens, tokens, need_weights=False)
        queries = queries + attended
        return queries + self.mlp(self.norm_mlp(queries))


class LabelQueries(nn.Module):
    """One query per tag: a learned vector, or a learned projection of the tag's text embedding."""

    def __init__(self, num_tags: int, dim: int, text_embeddings: torch.Tensor | None = None):
        super().__init__()
        self.learned = nn.Parameter(torch.randn(num_tags, dim) * 0.02) if text_embeddings is None else None
        if text_embeddings is not None:
            self.register_buffer("text_embeddings", text_embeddings.float().clone())
            self.project = nn.Sequential(nn.LayerNorm(text_embeddings.shape[1]), nn.Linear(text_embeddings.shape[1], dim))

    @property
    def open_set(self) -> bool:
        return self.learned is None

    def forward(self) -> torch.Tensor:
        return self.project(self.text_embeddings) if self.open_set else self.learned

    def extend(self, text_embeddings: torch.Tensor | None, count: int) -> None:
        """Queries for `count` new tags: from their text embeddings, or fresh learned vectors."""
        if self.open_set:
            if text_embeddings is None or len(text_embeddings) != count:
                raise ValueError("an open-set tagger needs one text embedding per new tag")
            self.text_embeddings = torch.cat([self.text_embeddings, text_embeddings.to(self.text_embeddings)])
        else:
            fresh = torch.randn(count, self.learned.shape[1], device=self.learned.device) * 0.02
            self.learned = nn.Parameter(torch.cat([self.learned.data, fresh]))


class Tagger(nn.Module):
    """Images in, one logit per tag out; thresholds per tag travel with the weights."""

    def __init__(self, config: ModelConfig, num_tags: int, text_embeddings: torch.Tensor | None = None,
                 caption_tokenizer=None):
        super().__init__()
        if (config.head.queries == "text") != (text_embeddings is not None):
            raise ValueError(f"model {config.name!r} has {config.head.queries} queries: "
                             + ("give text embeddings of the tags" if text_embeddings is None else "no text embeddings"))
        self.config = config
        self.encoder = ImageEncoder(config)
        head = config.head
        self.project_tokens = nn.Sequential(nn.Linear(self.encoder.dim, head.dim), nn.LayerNorm(head.dim))
        self.queries = LabelQueries(num_tags, head.dim, text_embeddings)
        self.layers = nn.ModuleList(CrossAttentionLayer(head.dim, head.heads, head.dropout) for _ in range(head.layers))
        self.norm = nn.LayerNorm(head.dim)
        self.classifier = LabelQueries(num_tags, head.dim, text_embeddings)  # a weight vector per tag, like its query
        self.bias = nn.Parameter(torch.zeros(num_tags))
        self.pooled = LabelQueries(num_tags, self.encoder.dim, text_embeddings) if head.pooled_branch else None
        self.register_buffer("thresholds", torch.full((num_tags,), config.default_threshold))
        self.caption, self.caption_tokenizer = None, caption_tokenizer
        if config.caption.enabled:
            if caption_tokenizer is None:
                raise ValueError(f"model {config.name!r} has a caption head: give it the caption tokenizer")
            from tagmill.model.caption import CaptionHead

            c = config.caption
            self.caption = CaptionHead(head.dim, c.layers, c.heads, c.max_tokens, caption_tokenizer.get_vocab_size())

    @property
    def num_tags(self) -> int:
        return len(self.thresholds)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tag_logits(*self.encode(images))

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's features and their projection to the head's width (the image tokens)."""
        features = self.encoder(images)
        return features, self.project_tokens(_scale_gradient(features, self.config.head.encoder_grad_scale))

    def caption_context(self, tokens: torch.Tensor, tags: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The caption decoder's cross-attention input: image tokens and the chosen tags' query vectors."""
        return self.caption.context(tokens, self.queries(), tags)

    def tag_logits(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        queries = self.queries().unsqueeze(0).expand(tokens.shape[0], -1, -1)
        for layer in self.layers:
            queries = layer(queries, tokens)
        logits = (self.norm(queries) * self.classifier()).sum(-1) + self.bias
        if self.pooled is not None:
            logits = logits + features.mean(dim=1) @ self.pooled().T
        return logits

    def add_tags(self, count: int, text_embeddings: torch.Tensor | None = None) -> None:
        """Score `count` more tags (appended at the end), at the default threshold until calibrated."""
        self.queries.extend(text_embeddings, count)
        self.classifier.extend(text_embeddings, count)
        if self.pooled is not None:
            self.pooled.extend(text_embeddings, count)
        self.bias = nn.Parameter(torch.cat([self.bias.data, torch.zeros(count, device=self.bias.device)]))
        extra = torch.full((count,), self.config.default_threshold, device=self.thresholds.device)
        self.thresholds = torch.cat([self.thresholds, extra])


def _scale_gradient(features: torch.Tensor, scale: float) -> torch.Tensor:
    """The same values, with only `scale` of the gradient flowing back.

    Trained from scratch together with the encoder, the label-query head's gradient drowns the
    encoder's slower features (shapes, on the synthetic world) under the easy ones (colours); the
    pooled branch trains the encoder at full strength and the head learns on top of it.
    """
    if scale == 1.0:
        return features
    return features * scale + features.detach() * (1.0 - scale)
