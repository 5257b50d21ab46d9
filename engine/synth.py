"""The synthetic world: captioned images whose true tags are known, with web-like caption noise.

Each sample is a textured scene with one to four coloured shapes drawn on it. Its truth is the
sorted set of canonical tags: the shapes, the colours of the shapes present, and the scene. Its
caption names them in varied English (synonyms, counts, plurals, negations of absent shapes) and is
corrupted the way web captions are: present objects left out, absent objects made up, colours named
wrongly. The output is laid out as img2dataset writes webdataset shards; the truth stays beside the
shards in ``truth.jsonl`` so that nothing downstream can read it by accident.

Every sample draws from its own generator seeded by ``(seed, index)``, so a sample does not depend
on the shard size, and the same config always gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "heart", "cross", "hexagon", "diamond", "crescent")
COLOURS = {
    "red": (205, 35, 35),
    "green": (45, 165, 55),
    "blue": (40, 85, 220),
    "yellow": (245, 215, 40),
    "orange": (245, 140, 25),
    "purple": (130, 50, 170),
    "pink": (245, 135, 185),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "brown": (125, 75, 35),
}
SCENES = ("grass", "beach", "sea", "snow", "forest", "brick wall", "night sky")
WORLD_TAGS = SHAPES + tuple(COLOURS) + SCENES

# Other words captions use for each tag; plurals follow regular English inflection.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("ball", "disc", "dot"),
    "square": ("box", "block"),
    "heart": ("valentine",),
    "cross": ("plus sign",),
    "diamond": ("lozenge",),
    "crescent": ("moon",),
    "red": ("scarlet",),
    "purple": ("violet",),
    "grass": ("lawn", "meadow"),
    "beach": ("sand", "shore"),
    "sea": ("ocean", "water"),
    "forest": ("woodland",),
    "brick wall": ("brickwork",),
    "night sky": ("night",),
}

# Every phrase names its scene through the tag itself or one of the tag's synonyms.
SCENE_PHRASES: dict[str, tuple[str, ...]] = {
    "grass": ("on the grass", "in the grass", "on a lawn", "on the lawn", "in a meadow"),
    "beach": ("on the beach", "at the beach", "on a beach", "on the sand", "on the shore"),
    "sea": ("on the sea", "out at sea", "on the water", "over the water", "in the ocean"),
    "snow": ("in the snow", "on the snow", "on fresh snow"),
    "forest": ("in a forest", "in the forest", "in a woodland"),
    "brick wall": ("against a brick wall", "in front of a brick wall", "on a brick wall",
                   "against some brickwork"),
    "night sky": ("under a night sky", "against the night sky", "in the night sky", "at night"),
}

# Caption bodies by what they mention: {obj} is the list of objects, {scene} a scene phrase and
# {be} agrees with the first object.
_WITH_SCENE = (
    "{obj} {scene}",
    "{scene} there {be} {obj}",
    "{scene}, {obj}",
    "a picture of {obj} {scene}",
    "a photo of {obj} {scene}",
    "an image showing {obj} {scene}",
    "there {be} {obj} {scene}",
    "a scene {scene} with {obj}",
)
_OBJECTS_ONLY = ("{obj}", "a picture of {obj}", "a photo of {obj}", "an image showing {obj}", "there {be} {obj}")
_SCENE_ONLY = ("a picture taken {scene}", "a photo taken {scene}")
_NOTHING = ("a picture", "a photo", "an image")
# Negations of one absent shape, appended to a body; {plural} and {singular} are the shape's noun.
_NEGATIONS = (
    "{body}, but no {plural}",
    "{body} and no {plural}",
    "{body} without any {plural}",
    "{body}. There is no {singular}",
)
_COUNT_WORDS = {2: "two", 3: "three", 4: "four"}

_OBJECT_COUNT_WEIGHTS = (0.35, 0.3, 0.2, 0.15)  # P(1..4 objects)
_REPEAT_KIND = 0.35  # chance that a new object copies the shape and colour of one already placed
_CANONICAL_WORD = 0.6  # chance that a tag is named by itself rather than a synonym
_MAX_TILT = {"circle": 0, "square": 15, "triangle": 15, "star": 36, "heart": 15, "cross": 15,
             "hexagon": 30, "diamond": 10, "crescent": 180}  # degrees either way
_PLAN, _RENDER, _TEXTURE = 1, 2, 3  # random streams, kept apart inside one seed
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class SynthConfig:
    """What to generate and how noisy its captions are."""

    n: int  # samples
    seed: int = 0
    image_size: int = 64  # pixels, square
    hallucination: float = 0.2  # per sample: the caption mentions an object that is absent
    omission: float = 0.3  # per present object (and per scene): the caption does not mention it
    wrong_attribute: float = 0.1  # per mentioned object group: its colour is named wrongly
    shard_size: int = 1000  # samples per tar shard
    negation: float = 0.25  # per sample: the caption also says an absent shape is not there

    def __post_init__(self) -> None:
        if self.n < 0 or self.seed < 0:
            raise ValueError("n and seed must be >= 0")
        if self.image_size < 32 or self.shard_size < 1:
            raise ValueError("image_size must be >= 32 and shard_size >= 1")
        for name in ("hallucination", "omission", "wrong_attribute", "negation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")


@dataclass(frozen=True)
class SynthSummary:
    """What `synthesize` wrote: the sample count, the shard count and the tar shard paths."""

    n: int
    shards: int
    paths: tuple[Path, ...]


@dataclass(frozen=True)
class SynthObject:
    """One shape drawn in an image: its kind, exact fill and where it sits."""

    shape: str
    colour: str
    rgb: tuple[int, int, int]
    x: float
    y: float
    radius: float
    tilt: float  # degrees


@dataclass(frozen=True)
class Mention:
    """A group of objects the caption names: "two red stars" is one mention with count 2."""

    shape: str
    colour: str  # the colour named, right or wrong
    count: int
    present: bool  # False for a made-up object


@dataclass(frozen=True)
class SamplePlan:
    """Everything about one sample but its pixels: objects, scene, what the caption says."""

    index: int
    key: str
    scene: str
    objects: tuple[SynthObject, ...]
    mentions: tuple[Mention, ...]
    scene_mentioned: bool
    negated: str | None  # the absent shape the caption negates, if any
    caption: str

    @property
    def tags(self) -> list[str]:
        """The ground truth: sorted canonical tags of the shapes, their colours and the scene."""
        present = {o.shape for o in self.objects} | {o.colour for o in self.objects}
        return sorted(present | {self.scene})


def world_vocabulary() -> list[str]:
    """The world's tags in their fixed order (line number in tags.txt = class index)."""
    return list(WORLD_TAGS)


def world_synonyms() -> dict[str, list[str]]:
    """Every tag with the other surface forms captions use for it (possibly none)."""
    return {tag: list(_SYNONYMS.get(tag, ())) for tag in WORLD_TAGS}


# ---------------------------------------------------------------------------------------------
# Planning a sample: objects, placement, mentions, caption.


def plan_sample(config: SynthConfig, index: int) -> SamplePlan:
    """The objects, scene and caption of sample `index`; depends only on (seed, index) and noise."""
    rng = np.random.default_rng([config.seed, _PLAN, index])
    scene = SCENES[rng.integers(len(SCENES))]
    objects = _place_objects(rng, config.image_size)
    mentions, scene_mentioned = _choose_mentions(rng, objects, config)
    negated = _choose_negation(rng, objects, mentions, scene_mentioned, config.negation)
    caption = _compose_caption(rng, mentions, scene if scene_mentioned else None, negated)
    return SamplePlan(index, f"{index:09d}", scene, objects, mentions, scene_mentioned, negated, caption)


def _place_objects(rng: np.random.Generator, size: int) -> tuple[SynthObject, ...]:
    """One to four objects; an object that finds no free enough spot is left out."""
    placed: list[SynthObject] = []
    for _ in range(1 + rng.choice(4, p=_OBJECT_COUNT_WEIGHTS)):
        shape, colour = _pick_kind(rng, placed)
        spot = _find_spot(rng, size, placed)
        if spot is not None:
            tilt = float(rng.uniform(-1, 1) * _MAX_TILT[shape])
            placed.append(SynthObject(shape, colour, _jitter(rng, COLOURS[colour]), *spot, tilt))
    return tuple(placed)


def _pick_kind(rng: np.random.Generator, placed: list[SynthObject]) -> tuple[str, str]:
    """A shape and colour; sometimes a repeat of an earlier object so captions get counts."""
    if placed and rng.random() < _REPEAT_KIND:
        twin = placed[rng.integers(len(placed))]
        return twin.shape, twin.colour
    return SHAPES[rng.integers(len(SHAPES))], _pick(rng, tuple(COLOURS))


def _find_spot(rng: np.random.Generator, size: int, placed: list[SynthObject],
               tries: int = 30) -> tuple[float, float, float] | None:
    """A centre and radius inside the image that overlaps earlier objects only partly.

    Centres keep at least 0.7 of the sum of radii apart, so every object stays mostly visible;
    the smallest object is about a fifth of the image across (a square a little less).
    """
    for _ in range(tries):
        radius = rng.uniform(0.13, 0.27) * size
        x, y = rng.uniform(radius, size - radius, size=2).tolist()
        if all(math.hypot(x - o.x, y - o.y) >= 0.7 * (radius + o.radius) for o in placed):
            return x, y, float(radius)
    return None


def _jitter(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A fill near the named colour, so no two objects of one colour are exactly alike."""
    shifts = rng.integers(-12, 13, size=3).tolist()
    return tuple(min(255, max(0, c + d)) for c, d in zip(rgb, shifts))


def _choose_mentions(rng: np.random.Generator, objects: tuple[SynthObject, ...],
                     config: SynthConfig) -> tuple[tuple[Mention, ...], bool]:
    """What the caption names, after omission, wrong colours and hallucination; in random order."""
    mentions = []
    for (shape, colour), count in Counter((o.shape, o.colour) for o in objects).items():
        kept = int((rng.random(count) >= config.omission).sum())
        if kept:
            named = _named_colour(rng, colour, objects, config.wrong_attribute)
            mentions.append(Mention(shape, named, kept, True))
    if rng.random() < config.hallucination:
        mentions.append(_hallucinate(rng, objects))
    scene_mentioned = bool(rng.random() >= config.omission)
    return tuple(mentions[i] for i in rng.permutation(len(mentions))), scene_mentioned


def _named_colour(rng: np.random.Generator, colour: str, objects: tuple[SynthObject, ...],
                  wrong: float) -> str:
    """The true colour, or with probability `wrong` one that no object in the image has."""
    if rng.random() >= wrong:
        return colour
    return _pick(rng, _absent(COLOURS, {o.colour for o in objects}))


def _hallucinate(rng: np.random.Generator, objects: tuple[SynthObject, ...]) -> Mention:
    """A made-up object whose shape and colour are both absent from the image."""
    shape = _pick(rng, _absent(SHAPES, {o.shape for o in objects}))
    colour = _pick(rng, _absent(COLOURS, {o.colour for o in objects}))
    return Mention(shape, colour, 1 if rng.random() < 0.85 else 2, False)


def _choose_negation(rng: np.random.Generator, objects: tuple[SynthObject, ...],
                     mentions: tuple[Mention, ...], scene_mentioned: bool, rate: float) -> str | None:
    """Sometimes one shape that is neither present nor mentioned, for the caption to deny."""
    if not (mentions or scene_mentioned) or rng.random() >= rate:
        return None
    taken = {o.shape for o in objects} | {m.shape for m in mentions}
    return _pick(rng, _absent(SHAPES, taken))


def _absent(names: Iterable[str], present: set[str]) -> tuple[str, ...]:
    """The names not in `present`, in their fixed order (so draws stay deterministic)."""
    return tuple(name for name in names if name not in present)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[rng.integers(len(options))]


def _compose_caption(rng: np.random.Generator, mentions: tuple[Mention, ...], scene: str | None,
                     negated: str | None) -> str:
    """One English caption for what is mentioned, with an optional negation and varied casing."""
    scene_phrase = _pick(rng, SCENE_PHRASES[scene]) if scene else ""
    objects, be = _object_list(rng, mentions)
    templates = ((_NOTHING, _SCENE_ONLY), (_OBJECTS_ONLY, _WITH_SCENE))[bool(mentions)][bool(scene)]
    body = _pick(rng, templates).format(obj=objects, scene=scene_phrase, be=be)
    if negated:
        noun = _surface(rng, negated)
        body = _pick(rng, _NEGATIONS).format(body=body, plural=pluralise(noun), singular=noun)
    return _style(rng, body)


def _object_list(rng: np.random.Generator, mentions: tuple[Mention, ...]) -> tuple[str, str]:
    """"a red star, two blue balls and a green box", and the verb agreeing with its first item."""
    phrases = [_noun_phrase(rng, m) for m in mentions]
    text = " and ".join(phrases) if len(phrases) < 3 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return text, ("are" if mentions and mentions[0].count > 1 else "is")


def _noun_phrase(rng: np.random.Generator, mention: Mention) -> str:
    colour, noun = _surface(rng, mention.colour), _surface(rng, mention.shape)
    if mention.count == 1:
        return f"{'an' if colour[0] in 'aeiou' else 'a'} {colour} {noun}"
    return f"{_COUNT_WORDS[mention.count]} {colour} {pluralise(noun)}"


def _surface(rng: np.random.Generator, tag: str) -> str:
    """The tag itself, or one of its synonyms."""
    synonyms = _SYNONYMS.get(tag, ())
    if not synonyms or rng.random() < _CANONICAL_WORD:
        return tag
    return _pick(rng, synonyms)


def pluralise(noun: str) -> str:
    """Regular English plural of a noun phrase's last word: star -> stars, box -> boxes."""
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou"):
        return noun[:-1] + "ies"
    return noun + "s"


def _style(rng: np.random.Generator, body: str) -> str:
    """Casing and a closing full stop vary, as they do in scraped captions."""
    text = body + ("." if rng.random() < 0.5 else "")
    roll = rng.random()
    if roll < 0.6:
        return text[0].upper() + text[1:]
    return text.title() if roll < 0.65 else text.lower()


# ---------------------------------------------------------------------------------------------
# Drawing: scene textures and shapes.


def make_texture_bank(seed: int, size: int, variants: int = 3) -> dict[str, list[np.ndarray]]:
    """A few texture tiles per scene, twice the image size, that samples crop and jitter."""
    bank = {}
    for number, scene in enumerate(SCENES):
        rng = np.random.default_rng([seed, _TEXTURE, number + 1])
        bank[scene] = [_TEXTURES[scene](rng, 2 * size) for _ in range(variants)]
    return bank


def render_jpeg(plan: SamplePlan, config: SynthConfig, bank: dict[str, list[np.ndarray]]) -> bytes:
    """The sample's image: a cropped scene tile with the plan's objects drawn over it."""
    rng = np.random.default_rng([config.seed, _RENDER, plan.index])
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


# ---------------------------------------------------------------------------------------------
# Writing: img2dataset's webdataset layout, plus the truth and the world's vocabulary.

_PARQUET_SCHEMA = pa.schema([
    ("url", pa.string()), ("caption", pa.string()), ("key", pa.string()), ("status", pa.string()),
    ("error_message", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
    ("original_width", pa.int64()), ("original_height", pa.int64()), ("sha256", pa.string()),
])


@dataclass(frozen=True)
class _Record:
    key: str
    jpg: bytes
    meta: dict
    tags: list[str]


def synthesize(out_dir: str | Path, config: SynthConfig) -> SynthSummary:
    """Writes `config.n` samples as img2dataset-style shards into `out_dir`, with their truth."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bank = make_texture_bank(config.seed, config.image_size)
    tars, truth = [], []
    for shard in range(-(-config.n // config.shard_size)):
        first = shard * config.shard_size
        indices = range(first, min(first + config.shard_size, config.n))
        records = [_record(plan_sample(config, i), config, bank) for i in indices]
        tars.append(_write_shard(out, shard, records))
        truth.extend(json.dumps({"key": r.key, "tags": r.tags}) + "\n" for r in records)
    _write_world(out, truth)
    return SynthSummary(config.n, len(tars), tuple(tars))


def _record(plan: SamplePlan, config: SynthConfig, bank: dict[str, list[np.ndarray]]) -> _Record:
    """The image and the per-sample json img2dataset would have written for it."""
    jpg = render_jpeg(plan, config, bank)
    size = config.image_size
    meta = {"url": f"synth://{plan.key}", "caption": plan.caption, "key": plan.key, "status": "success",
            "error_message": None, "width": size, "height": size, "original_width": size,
            "original_height": size, "sha256": hashlib.sha256(jpg).hexdigest()}
    return _Record(plan.key, jpg, meta, plan.tags)


def _write_shard(out: Path, shard: int, records: list[_Record]) -> Path:
    """`NNNNN.tar`, `NNNNN.parquet` and, last, `NNNNN_stats.json`, each renamed into place whole."""
    name = f"{shard:05d}"
    _atomic(out / f"{name}.tar", lambda path: _write_tar(path, records))
    table = pa.Table.from_pylist([r.meta for r in records], schema=_PARQUET_SCHEMA)
    _atomic(out / f"{name}.parquet", lambda path: pq.write_table(table, path))
    _atomic(out / f"{name}_stats.json", lambda path: path.write_text(_stats(len(records))))
    return out / f"{name}.tar"


def _write_tar(path: Path, records: list[_Record]) -> None:
    """Members in key order, jpg/json/txt per key, with a fixed mtime so reruns are byte-identical."""
    with open(path, "wb") as stream, wds.TarWriter(stream, encoder=False, mtime=0) as writer:
        for r in records:
            writer.write({"__key__": r.key, "jpg": r.jpg, "json": json.dumps(r.meta, indent=4).encode(),
                          "txt": r.meta["caption"].encode("utf-8")})


def _stats(count: int) -> str:
    """img2dataset's per-shard stats; times are zero so that the file is deterministic."""
    stats = {"count": count, "successes": count, "failed_to_download": 0, "failed_to_resize": 0,
             "duration": 0, "start_time": 0, "end_time": 0, "status_dict": {"success": count}}
    return json.dumps(stats, indent=4)


def _write_world(out: Path, truth: list[str]) -> None:
    """truth.jsonl, tags.txt (RAM's tag list format) and synonyms.json."""
    _atomic(out / "truth.jsonl", lambda path: path.write_text("".join(truth), encoding="utf-8"))
    _atomic(out / "tags.txt", lambda path: path.write_text("\n".join(WORLD_TAGS) + "\n", encoding="utf-8"))
    synonyms = json.dumps(world_synonyms(), indent=2, sort_keys=True) + "\n"
    _atomic(out / "synonyms.json", lambda path: path.write_text(synonyms, encoding="utf-8"))


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Writes through a temporary name beside `path`, then renames, so no reader sees half a file."""
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
