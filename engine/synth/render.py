"""Drawing the synthetic world: scene textures, the unit outline of each shape, and a sample's JPEG."""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from tagmill.engine.synth.plan import RENDER_STREAM, SCENES, TEXTURE_STREAM, SamplePlan, SynthConfig, SynthObject

_JPEG_QUALITY = 90


def make_texture_bank(seed: int, size: int, variants: int = 3) -> dict[str, list[np.ndarray]]:
    """A few texture tiles per scene, twice the image size, that samples crop and jitter."""
    bank = {}
    for number, scene in enumerate(SCENES):
        rng = np.random.default_rng([seed, TEXTURE_STREAM, number + 1])
        bank[scene] = [_TEXTURES[scene](rng, 2 * size) for _ in range(variants)]
    return bank


def render_jpeg(plan: SamplePlan, config: SynthConfig, bank: dict[str, list[np.ndarray]]) -> bytes:
    """The sample's image: a cropped scene tile with the plan's objects drawn over it."""
    rng = np.random.default_rng([config.seed, RENDER_STREAM, plan.index])
    image = Image.fromarray(_background(rng, bank[plan.scene], config.image_size))
    draw = ImageDraw.Draw(image)
    edge = max(1, config.image_size // 48)
    for obj in plan.objects:
        draw.polygon(_outline_points(obj), fill=obj.rgb, outline=_edge_colour(obj.rgb), width=edge)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue()


def _background(rng: np.random.Generator, tiles: list[np.ndarray], size: int) -> np.ndarray:
    """A random crop of one tile, maybe mirrored, a little brighter or darker."""
    tile = tiles[rng.integers(len(tiles))]
    top, left = rng.integers(0, tile.shape[0] - size + 1, size=2)
    crop = tile[top:top + size, left:left + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gain = int(rng.integers(225, 288))  # brightness x 0.88..1.12, in 1/256ths
    return np.minimum((crop.astype(np.uint32) * gain) >> 8, 255).astype(np.uint8)


def _outline_points(obj: SynthObject) -> list[tuple[float, float]]:
    """The object's polygon in pixels: the unit shape turned by its tilt, scaled and moved."""
    angle = np.deg2rad(obj.tilt)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = _UNIT_SHAPES[obj.shape] @ turn.T * obj.radius + (obj.x, obj.y)
    return [tuple(p) for p in points.tolist()]


def _edge_colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A dark rim around light fills and a light one around dark fills, to part them from the scene."""
    luminance = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255
    return (25, 25, 25) if luminance > 0.3 else (230, 230, 230)


def _ring(count: int, radius: float = 1.0, start: float = -90.0) -> np.ndarray:
    """`count` points evenly round a circle, the first at `start` degrees (-90 is straight up)."""
    angles = np.deg2rad(start + 360.0 * np.arange(count) / count)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star() -> np.ndarray:
    points = _ring(10)
    points[1::2] *= 0.45
    return points


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y], axis=1)


def _cross(arm: float = 0.33) -> np.ndarray:
    a = arm
    return np.array([(-a, -1), (a, -1), (a, -a), (1, -a), (1, a), (a, a),
                            (a, 1), (-a, 1), (-a, a), (-1, a), (-1, -a), (-a, -a)], dtype=float)


def _crescent(offset: float = 0.5, inner: float = 0.8) -> np.ndarray:
    """The unit disc less a disc of radius `inner` shifted right by `offset`: a moon facing left."""
    x = (1 - inner**2 + offset**2) / (2 * offset)
    y = np.sqrt(1 - x**2)
    outer_from, inner_from = np.arctan2(y, x), np.arctan2(y, x - offset)
    outer = np.linspace(outer_from, 2 * np.pi - outer_from, 24)
    hollow = np.linspace(2 * np.pi - inner_from, inner_from, 16)
    points = np.concatenate([np.stack([np.cos(outer), np.sin(outer)], axis=1),
                             np.stack([offset + inner * np.cos(hollow), inner * np.sin(hollow)], axis=1)])
    return points


def _fit(points: np.ndarray) -> np.ndarray:
    """Centres a polygon on its bounding box and scales it into the unit disc, so that an object
    of radius r at least r from the border stays whole at any tilt."""
    points = points - (points.max(axis=0) + points.min(axis=0)) / 2
    return points / np.hypot(points[:, 0], points[:, 1]).max()


_UNIT_SHAPES = {name: _fit(points) for name, points in {
    "circle": _ring(32),
    "square": np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=float),
    "triangle": _ring(3),
    "star": _star(),
    "heart": _heart(),
    "cross": _cross(),
    "hexagon": _ring(6, start=0.0),
    "diamond": np.array([(0, -1), (0.62, 0), (0, 1), (-0.62, 0)], dtype=float),
    "crescent": _crescent(),
}.items()}


def _smooth(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid scaled up bilinearly."""
    grid = Image.fromarray(rng.random((cells, cells)).astype(np.float32))
    return np.asarray(grid.resize((size, size), Image.Resampling.BILINEAR))


def _streaks(rng: np.random.Generator, size: int, rows: int) -> np.ndarray:
    """Noise stretched vertically: blades of grass, stems."""
    grid = Image.fromarray(rng.random((rows, size)).astype(np.float32))
    return np.asarray(grid.resize((size, size), Image.Resampling.BILINEAR))


def _paint(field: np.ndarray, dark: tuple[int, int, int], light: tuple[int, int, int]) -> np.ndarray:
    """Colours a [0, 1] field by blending from `dark` to `light`."""
    weight = np.clip(field, 0, 1)[..., None]
    return (np.array(dark) + (np.array(light) - np.array(dark)) * weight).astype(np.uint8)


def _grass(rng: np.random.Generator, t: int) -> np.ndarray:
    field = 0.6 * _streaks(rng, t, max(2, t // 6)) + 0.4 * _smooth(rng, t, 6)
    return _paint(field, (25, 85, 20), (120, 190, 70))


def _beach(rng: np.random.Generator, t: int) -> np.ndarray:
    rows = np.arange(t, dtype=float)[:, None]
    ripples = 0.5 + 0.5 * np.sin(2 * np.pi * rows / (t / 7) + 5 * _smooth(rng, t, 4))
    field = 0.4 * _smooth(rng, t, 5) + 0.25 * ripples + 0.35 * rng.random((t, t))
    return _paint(field, (185, 150, 100), (245, 225, 175))


def _sea(rng: np.random.Generator, t: int) -> np.ndarray:
    rows = np.arange(t, dtype=float)[:, None]
    waves = 0.5 + 0.5 * np.sin(2 * np.pi * rows / (t / 9) + 6 * _smooth(rng, t, 3))
    image = _paint(0.7 * waves + 0.3 * _smooth(rng, t, 6), (15, 55, 120), (70, 150, 210))
    image[(waves > 0.93) & (rng.random((t, t)) > 0.6)] = (215, 235, 245)
    return image


def _snow(rng: np.random.Generator, t: int) -> np.ndarray:
    field = 0.6 * _smooth(rng, t, 5) + 0.4 * rng.random((t, t))
    return _paint(field, (195, 205, 222), (252, 253, 255))


def _forest(rng: np.random.Generator, t: int) -> np.ndarray:
    image = _paint(0.6 * _smooth(rng, t, 12) + 0.4 * rng.random((t, t)), (12, 40, 18), (55, 105, 40))
    width = max(1, t // 40)
    for left in rng.integers(0, t - width, size=max(3, t // 12)):
        trunk = image[:, left:left + width]
        image[:, left:left + width] = (0.3 * trunk + 0.7 * np.array((75, 50, 30))).astype(np.uint8)
    return image


def _brick_wall(rng: np.random.Generator, t: int) -> np.ndarray:
    height, width, mortar = max(4, t // 10), max(8, t // 5), max(1, t // 80)
    rows, cols = np.mgrid[0:t, 0:t]
    course = rows // height
    shifted = cols + (course % 2) * (width // 2)
    shade = rng.uniform(0.75, 1.1, size=(course.max() + 1, shifted.max() // width + 1))
    grain = 0.9 + 0.2 * rng.random((t, t))
    image = np.clip(np.array((160, 70, 45)) * (shade[course, shifted // width] * grain)[..., None], 0, 255)
    image[(rows % height < mortar) | (shifted % width < mortar)] = (185, 180, 170)
    return image.astype(np.uint8)


def _night_sky(rng: np.random.Generator, t: int) -> np.ndarray:
    gradient = np.repeat(np.linspace(0, 1, t)[:, None], t, axis=1)
    image = _paint(0.8 * gradient + 0.2 * _smooth(rng, t, 4), (4, 6, 22), (28, 34, 80))
    image[rng.random((t, t)) > 0.996] = (235, 235, 245)
    return image


_TEXTURES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "grass": _grass, "beach": _beach, "sea": _sea, "snow": _snow,
    "forest": _forest, "brick wall": _brick_wall, "night sky": _night_sky,
}
