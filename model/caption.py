"""Tag2Text's tag-guided captioning: a small GPT-2 decoder (transformers) that writes a caption while
cross-attending to the image tokens and to the embeddings of the image's tags.

Training conditions on the sample's target tags (teacher forcing, as Tag2Text trains on parsed
tags); inference conditions on the tags the tagger predicts. Words come from a word-level
tokenizer (the `tokenizers` library) trained on the training captions and saved with the
checkpoint, so nothing is downloaded.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

SPECIAL = ("[PAD]", "[UNK]", "[BOS]", "[EOS]")


def train_tokenizer(captions: Iterable[str], size: int):
    """A lower-cased word-level tokenizer of the `size` most frequent words."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer

    tokenizer = Tokenizer(WordLevel(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(captions, WordLevelTrainer(vocab_size=size, special_tokens=list(SPECIAL)))
    return tokenizer


def load_tokenizer(serialized: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(serialized)


class CaptionHead(nn.Module):
    """The decoder; `loss` for training, `generate` for captions."""

    def __init__(self, dim: int, layers: int, heads: int, max_tokens: int, vocabulary_size: int):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        pad, _, bos, eos = range(len(SPECIAL))
        config = GPT2Config(vocab_size=vocabulary_size, n_positions=max_tokens, n_embd=dim, n_layer=layers,
                            n_head=heads, add_cross_attention=True, bos_token_id=bos, eos_token_id=eos,
                            pad_token_id=pad, tie_word_embeddings=False)
        self.decoder = GPT2LMHeadModel(config)
        self.max_tokens = max_tokens

    def encode(self, tokenizer, captions: list[str]) -> torch.Tensor:
        """[BOS] words [EOS], padded with [PAD] (0) to the longest, cut to max_tokens."""
        pad, _, bos, eos = range(len(SPECIAL))
        rows = [[bos, *tokenizer.encode(c).ids][: self.max_tokens - 1] + [eos] for c in captions]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)

    @staticmethod
    def context(tokens: torch.Tensor, tag_embeddings: torch.Tensor, tags: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """What the decoder attends to: the image tokens, then the embeddings of the chosen tags."""
        batch = tokens.shape[0]
        states = torch.cat([tokens, tag_embeddings.unsqueeze(0).expand(batch, -1, -1)], dim=1)
        image_mask = torch.ones(tokens.shape[:2], dtype=torch.long, device=tokens.device)
        return states, torch.cat([image_mask, tags.long()], dim=1)

    def loss(self, states: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        labels = ids.masked_fill(ids == 0, -100)
        attention = (ids != 0).long()
        output = self.decoder(input_ids=ids, attention_mask=attention, encoder_hidden_states=states,
                              encoder_attention_mask=mask, labels=labels)
        return output.loss

    @torch.no_grad()
    def generate(self, tokenizer, states: torch.Tensor, mask: torch.Tensor) -> list[str]:
        _, _, bos, eos = range(len(SPECIAL))
        start = torch.full((states.shape[0], 1), bos, dtype=torch.long, device=states.device)
        ids = self.decoder.generate(input_ids=start, encoder_hidden_states=states, encoder_attention_mask=mask,
                                    max_new_tokens=self.max_tokens - 1, do_sample=False, eos_token_id=eos,
                                    pad_token_id=0, attention_mask=torch.ones_like(start))
        return [tokenizer.decode([i for i in row.tolist() if i > eos]) for row in ids]
