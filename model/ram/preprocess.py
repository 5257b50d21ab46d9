"""The official inference's preprocessing: RGB, Pillow bilinear resize to a square without crop, to
[0, 1], normalized (ImageNet's mean and std)."""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import torch
from PIL import Image


def official_transform(size: int, mean: list[float], std: list[float]) -> Callable[[Image.Image], torch.Tensor]:
    return functools.partial(preprocess, size=size, mean=mean, std=std)


def preprocess(image: Image.Image, size: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """A (3, size, size) float32 tensor, as torchvision's Resize((size, size)), ToTensor and Normalize give."""
    resized = bilinear_resize(image if image.mode == "RGB" else image.convert("RGB"), size, size)
    tensor = torch.from_numpy(np.asarray(resized, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
    return (tensor - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def bilinear_resize(image: Image.Image, width: int, height: int) -> Image.Image:
    """Pillow's bilinear resize with its two passes in a fixed order, the same pixels on any Pillow.

    Pillow resamples in two 8-bit passes whose rounding depends on their order. Pillow 13 runs the
    vertical pass first when the height shrinks by more than twice as many pixels as the width;
    earlier versions always start with the horizontal one, so a portrait photo's pixels differ by
    one level in about a tenth of its values. Two one-axis resizes in Pillow 13's order give its
    pixels on every version.
    """
    old_width, old_height = image.size
    shrink_height = old_height - height
    if shrink_height > 0 and shrink_height > 2 * (old_width - width):
        return image.resize((old_width, height), Image.BILINEAR).resize((width, height), Image.BILINEAR)
    return image.resize((width, old_height), Image.BILINEAR).resize((width, height), Image.BILINEAR)
