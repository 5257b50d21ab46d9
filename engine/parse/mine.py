"""Mining a tag vocabulary from a caption corpus by frequency, as RAM built its own.

Terms are counted once per caption (document frequency): lemmas of content words (plural and verb
inflections merge through spaCy's lookup lemmatizer) and two-word noun compounds that hold together
("traffic light", not "red car"). How a word is used decides its category: mostly before a noun is
an attribute, mostly as an -ing form an action, mostly after "in"/"at" a scene, else an object.
A trained spaCy pipeline, when given, supplies real part-of-speech tags instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import spacy
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.tokens import Doc

from tagmill.engine.parse import lexicon
from tagmill.engine.vocab import ACTION, ATTRIBUTE, OBJECT, SCENE, Vocabulary

COMPOUND_COHESION = 0.25  # a compound's count over its rarer word's count, at least
ROLE_SHARE = 0.6  # share of a word's uses that decides its category
SCENE_PREPOSITIONS = frozenset({"in", "at", "inside", "outside"})
_ROLES = ("before_noun", "ing", "after_scene_preposition", "noun", "after_determiner")
DETERMINERS = frozenset({"a", "an", "the", "this", "that", "these", "those", "some", "his", "her", "their", "its",
                         "two", "three", "four", "several", "many"})
ADVERB_NOUN_SHARE = 0.15  # a word WordNet also lists as an adverb is a noun only this often after a determiner


@dataclass
class TermCounts:
    """Mergeable counts from part of a corpus."""

    terms: Counter = field(default_factory=Counter)  # lemma or "modifier head" -> captions containing it
    roles: Counter = field(default_factory=Counter)  # (lemma, role) -> uses in that role
    uses: Counter = field(default_factory=Counter)  # lemma -> all uses
    captions: int = 0

    def merge(self, other: "TermCounts") -> "TermCounts":
        self.terms.update(other.terms)
        self.roles.update(other.roles)
        self.uses.update(other.uses)
        self.captions += other.captions
        return self


class TermCounter:
    """Counts candidate terms in captions; one per worker, reused across batches."""

    def __init__(self, spacy_model: str | None = None):
        self._nlp = spacy.load(spacy_model) if spacy_model else spacy.blank("en")
        self._tagged = spacy_model is not None

    def count(self, captions: Iterable[str]) -> TermCounts:
        counts = TermCounts()
        for doc in self._nlp.pipe(captions, batch_size=256):
            counts.captions += 1
            counts.terms.update(set(self._terms(doc, counts)))
        return counts

    def _terms(self, doc: Doc, counts: TermCounts) -> list[str]:
        words = [(t.lower_, self._word_class(t)) for t in doc]
        terms = []
        for i, (word, word_class) in enumerate(words):
            if word_class is None:
                continue
            base = self._base(words, i)
            terms.append(base)
            counts.uses[base] += 1
            for role in self._roles(words, i, noun_use=word_class == "noun" or base == word):
                counts.roles[(base, role)] += 1
            if i + 1 < len(words) and word_class == "noun" and words[i + 1][1] == "noun":
                terms.append(f"{word} {lexicon.lemma(words[i + 1][0])}")
        return terms

    @staticmethod
    def _base(words: list[tuple[str, str | None]], i: int) -> str:
        """The lemma, except for a noun in -ing after a determiner: "a building" is not "build"."""
        word = words[i][0]
        previous = words[i - 1][0] if i > 0 else ""
        in_noun_phrase = previous in DETERMINERS or lexicon.is_adjective(previous)
        return word if word.endswith("ing") and in_noun_phrase and lexicon.is_noun(word) else lexicon.lemma(word)

    def _word_class(self, token) -> str | None:
        """"noun", "other" (a content word of another class) or None (not a candidate)."""
        word = token.lower_
        if word in STOP_WORDS or not word.isalpha() or len(word) < 3:
            return None
        if self._tagged:
            return {"NOUN": "noun", "PROPN": "noun", "ADJ": "other", "VERB": "other"}.get(token.pos_)
        if lexicon.is_noun_form(word):
            return "noun"
        base = lexicon.lemma(word)
        return "other" if lexicon.is_adjective(base) or lexicon.is_verb(base) else None

    @staticmethod
    def _roles(words: list[tuple[str, str | None]], i: int, noun_use: bool) -> list[str]:
        roles = []
        if i + 1 < len(words) and words[i + 1][1] == "noun":
            roles.append("before_noun")
        if words[i][0].endswith("ing"):
            roles.append("ing")
        if noun_use:
            roles.append("noun")
        if i > 0 and words[i - 1][0] in DETERMINERS:
            roles.append("after_determiner")
        preceding = [w for w, _ in words[max(0, i - 2):i]]
        if any(w in SCENE_PREPOSITIONS for w in preceding):
            roles.append("after_scene_preposition")
        return roles


def select_vocabulary(counts: TermCounts, size: int, min_count: int) -> Vocabulary:
    """The `size` most frequent terms seen at least `min_count` times, each with a category."""
    frequent = [(n, t) for t, n in counts.terms.items() if n >= min_count and _holds_together(t, n, counts)]
    chosen = sorted(frequent, key=lambda item: (-item[0], item[1]))[:size]
    
    if not chosen:
        raise ValueError(f"no term occurs in at least {min_count} of {counts.captions} captions; "
                         "lower parse.mine.min_count or give a vocabulary")
    categories = {term: _category(term, counts) for _, term in chosen}
    tags = tuple(term for term, category in categories.items() if category is not None)
    return Vocabulary(tags=tags, categories={t: categories[t] for t in tags}, source="mined")


def _holds_together(term: str, count: int, counts: TermCounts) -> bool:
    if " " not in term:
        return True
    first, second = term.split(" ")
    rarer = min(counts.terms.get(lexicon.lemma(first), count), counts.terms.get(second, count))
    return count >= COMPOUND_COHESION * rarer


def _category(term: str, counts: TermCounts) -> str | None:
    """The term's category from how it is used; None for a word mostly used as a plain verb."""
    if " " in term:
        return OBJECT
    uses = max(counts.uses[term], 1)
    share = {role: counts.roles[(term, role)] / uses for role in _ROLES}
    if share["ing"] >= ROLE_SHARE and lexicon.is_verb(term) and not term.endswith("ing"):
        return ACTION
    if share["before_noun"] >= ROLE_SHARE and lexicon.is_adjective(term):
        return ATTRIBUTE
    if share["noun"] < 0.5:
        return None
    if lexicon.is_adverb(term) and share["after_determiner"] < ADVERB_NOUN_SHARE:
        return None  # "near", "outside": adverbs, not things
    if share["after_scene_preposition"] >= ROLE_SHARE:
        return SCENE
    return OBJECT
