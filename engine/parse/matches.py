"""What the parse rules read: a caption's lower-cased words and the longest matches of tag forms in it."""

from __future__ import annotations

from spacy.tokens import Doc

from tagmill.engine.parse.words import DETERMINERS
from tagmill.engine.vocab import ACTION, ATTRIBUTE


class Match:
    """A longest match of a surface form: token positions, the tag it means, and how it was named.

    A plain class with slots: a parser makes one for every mention, and this is the cheapest kind.
    """

    __slots__ = ("start", "end", "tag", "category", "canonical", "is_thing")

    def __init__(self, start: int, end: int, tag: str, category: str | None, canonical: bool):
        self.start, self.end, self.tag, self.category = start, end, tag, category
        self.canonical = canonical  # through a form of the tag itself, not of a synonym
        self.is_thing = category not in (ATTRIBUTE, ACTION)

    def __repr__(self) -> str:
        return f"Match({self.start}, {self.end}, {self.tag!r}, {self.category!r}, {self.canonical})"


class Caption:
    """One caption as tokenized (`text`, `doc`), its lower-cased words and its matches, for the rules to read.

    `cues` holds the caption's distinct words, so that a rule whose cue word ("no", "or", "like")
    is not in the caption costs one set lookup; `thing_starts` where the object-like matches start.
    `has_inner_capital` is also true of a caption without letters, as it only spares work.
    """

    __slots__ = ("text", "doc", "words", "matches", "cues", "thing_starts", "has_inner_capital")

    def __init__(self, text: str, doc: Doc, words: list[str], matches: list[Match]):
        self.text, self.doc, self.words, self.matches = text, doc, words, matches
        self.cues = frozenset(words)
        self.thing_starts = frozenset(m.start for m in matches if m.is_thing)
        self.has_inner_capital = not text[1:].islower()  # a capital after the first letter: names need one

    def has_any(self, cues: frozenset[str]) -> bool:
        return not self.cues.isdisjoint(cues)

    def word(self, i: int) -> str:
        return self.words[i] if 0 <= i < len(self.words) else ""

    def before(self, start: int, count: int = 4) -> list[str]:
        """Up to `count` words before a position, determiners at the end left out."""
        words = self.words[max(0, start - count):start]
        while words and words[-1] in DETERMINERS:
            words.pop()
        return words

    def starts_thing(self, position: int) -> bool:
        """Whether a match of an object-like tag starts at this token: a noun is there."""
        return position in self.thing_starts
