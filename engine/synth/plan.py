"""The synthetic world's tags and each sample's plan: its shapes and where they sit, its scene, and
the caption that names them, noise included. Everything about a sample but its pixels.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import numpy as np

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
PLAN_STREAM, RENDER_STREAM, TEXTURE_STREAM = 1, 2, 3  # random streams, kept apart inside one seed


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
    rng = np.random.default_rng([config.seed, PLAN_STREAM, index])
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

