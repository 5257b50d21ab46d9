"""RAM's image encoder: timm's Swin Transformer, its final tokens with their mean prepended.

timm computes what the official (Microsoft) Swin computes: the same window partition, cyclic
shift, -100 attention mask between shifted regions, relative position bias and 2×2 patch merging
(concatenated in the same order), and a stage whose grid is no larger than the window uses one
unshifted window of the grid's size, as the official one does. Only the layout of the weights
differs, which `keys.py` maps: timm merges patches at the start of a stage where the official
model does it at the end of the previous one, and it recomputes `relative_position_index` and
`attn_mask` instead of storing them.
"""

from __future__ import annotations

import math
import warnings

import torch
from timm.layers import resize_rel_pos_bias_table
from timm.models.swin_transformer import SwinTransformer
from torch import nn

from tagmill.model.ram.config import SwinConfig


class SwinEncoder(nn.Module):
    """Images to (batch, 1 + tokens, width): the mean of the final tokens first, then the tokens."""

    def __init__(self, image_size: int, config: SwinConfig):
        super().__init__()
        self.swin = SwinTransformer(img_size=image_size, patch_size=config.patch_size, embed_dim=config.embed_dim,
                                    depths=tuple(config.depths), num_heads=tuple(config.heads),
                                    window_size=config.window, mlp_ratio=config.mlp_ratio, qkv_bias=True,
                                    drop_path_rate=config.drop_path_rate, num_classes=0)
        self.dim = self.swin.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.swin.forward_features(images).flatten(1, 2)  # (B, H, W, C) to (B, H·W, C)
        return torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)


def stage_windows(encoder: SwinEncoder) -> list[int]:
    """The window side each stage really uses (its grid's side where that is smaller)."""
    return [stage.blocks[0].window_size[0] for stage in encoder.swin.layers]


def table_window(rows: int) -> int:
    """The window side of a relative-position table of `rows` rows, (2·window − 1)²."""
    return (math.isqrt(rows) + 1) // 2


def resize_position_table(table: torch.Tensor, window: int) -> torch.Tensor:
    """A relative-position bias table of another window size, interpolated to `window`."""
    old = table_window(table.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm's interpolator notes its own tensor layouts
        resized = resize_rel_pos_bias_table(table.float(), new_window_size=(window, window),
                                            new_bias_shape=((2 * window - 1) ** 2, table.shape[1]),
                                            old_window_size=(old, old))
    return resized.to(table.dtype)
