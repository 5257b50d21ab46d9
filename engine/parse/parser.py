"""Captions to tags: spaCy's tokenizer and phrase matcher over every surface form of every tag.

Surface forms are compiled once per vocabulary: each tag and synonym, the inflections of its last
word from spaCy's lookup tables (plurals for nouns, verb forms for actions), its open spelling when
it is a closed compound ("lap top") and its dotted one when it is an initialism ("t.v."), so
matching needs no per-token lemmatisation. The longest match wins ("teddy bear" is not "bear"); a
form shared by an object and an attribute tag ("orange") goes to the attribute before a noun.

Then the rules of `parse_rules` read the words around each match and set aside, each with its
reason, the mentions that do not say the thing is in the picture ("no people", "a giraffe costume").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

import spacy
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from tagmill.engine.parse import lexicon, rules as parse_rules
from tagmill.engine.parse.rules import Caption, Match
from tagmill.engine.vocab import ACTION, ATTRIBUTE, COLOUR_TERMS, Vocabulary

MAX_CAPTION_CHARS = 10_000  # the parser's own guard; the pipeline's cap is configurable and lower
_IRREGULAR_SPACE = re.compile(r"^\s|\s$|\s\s|[^\S ]")  # leading, trailing, doubled, or not a plain space


@dataclass(frozen=True, slots=True)
class Mention:
    """One tag found in a caption: where, through which words, and why it is ignored (None: it counts)."""

    tag: str
    text: str
    start: int  # character offsets into the caption
    end: int
    ignored: str | None = None  # one of the reasons in parse_rules' docstring


class CaptionParser:
    """Turns captions into sorted canonical tags of one vocabulary."""

    def __init__(self, vocab: Vocabulary, nlp: spacy.Language | None = None):
        self.vocab = vocab
        self._nlp = nlp if nlp is not None else spacy.blank("en")
        self._matcher = PhraseMatcher(self._nlp.vocab, attr="LOWER")
        self._category = {tag: vocab.category(tag) for tag in vocab.tags}
        self._tags_of: dict[int, tuple[str, ...]] = {}
        self._canonical_forms: set[int] = set()
        strings = self._nlp.vocab.strings
        for form, (tags, canonical) in _surface_forms(vocab).items():
            key = strings.add(form)
            self._tags_of[key] = tags
            if canonical:
                self._canonical_forms.add(key)
            self._matcher.add(form, self._patterns(form))

    def parse(self, caption: str) -> list[str]:
        return self._doc_tags(self._nlp.make_doc(_squeeze(_clip(caption))))

    def parse_many(self, captions: Iterable[str], batch_size: int = 256) -> Iterator[list[str]]:
        for doc in self._nlp.tokenizer.pipe((_squeeze(_clip(c)) for c in captions), batch_size=batch_size):
            yield self._doc_tags(doc)

    def mentions(self, caption: str) -> list[Mention]:
        """Every tag mention in the caption, ignored ones included with their reason."""
        text = _clip(caption)
        squeezed = _squeeze(text)
        doc = self._nlp.make_doc(squeezed)
        read, reasons = self._read(doc)
        where = _original_offsets(text, squeezed)
        return [_mention(doc, text, where, m, r) for m, r in zip(read.matches, reasons)]

    def _patterns(self, form: str) -> list[Doc]:
        """The form as the tokenizer splits it, and as one token when it has full stops ("t.v.")."""
        patterns = [self._nlp.make_doc(form)]
        if "." in form and " " not in form:
            patterns.append(Doc(self._nlp.vocab, words=[form]))
        return patterns

    def _doc_tags(self, doc: Doc) -> list[str]:
        caption, reasons = self._read(doc)
        return sorted({m.tag for m, r in zip(caption.matches, reasons) if r is None})

    def _read(self, doc: Doc) -> tuple[Caption, list[str | None]]:
        """The caption's longest matches and, for each, why it does not count (None: it counts)."""
        words = [t.lower_ for t in doc]
        found = _longest(self._matcher(doc))
        caption = Caption(doc, words, [self._match(words, key, start, end) for key, start, end in found])
        reasons: list[str | None] = []
        for i in range(len(caption.matches)):
            reasons.append(parse_rules.reason(caption, i, reasons))
        return caption, reasons

    def _match(self, words: list[str], key: int, start: int, end: int) -> Match:
        tag = self._pick_sense(words, key, end)
        return Match(start, end, tag, self._category[tag], key in self._canonical_forms)

    def _pick_sense(self, words: list[str], key: int, end: int) -> str:
        """Of the tags a surface form can mean, the attribute one when a noun follows, else the other."""
        tags = self._tags_of[key]
        if len(tags) == 1:
            return tags[0]
        modifies_noun = end < len(words) and lexicon.is_noun(words[end])
        by_category = [t for t in tags if (self._category[t] == ATTRIBUTE) == modifies_noun]
        return (by_category or list(tags))[0]


def _mention(doc: Doc, text: str, where: list[int] | None, match: Match, reason: str | None) -> Mention:
    """A match as a mention, with offsets into the caption as given (before spaces were squeezed)."""
    span = doc[match.start:match.end]
    start, end = span.start_char, span.end_char
    if where is not None:
        start, end = where[start], where[end - 1] + 1
    return Mention(match.tag, text[start:end], start, end, reason)


def _longest(found: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Non-overlapping matches, longer ones first and then earlier ones, in caption order."""
    taken: list[tuple[int, int, int]] = []
    for key, start, end in sorted(found, key=lambda f: (f[1] - f[2], f[1])):
        if all(end <= s or start >= e for _, s, e in taken):
            taken.append((key, start, end))
    return sorted(taken, key=lambda f: f[1])


def _clip(caption: str) -> str:
    return caption[:MAX_CAPTION_CHARS]


def _squeeze(text: str) -> str:
    """Words one space apart: spaCy makes a token of every extra space, and "teddy  bear" would not match."""
    return " ".join(text.split()) if _IRREGULAR_SPACE.search(text) else text


def _original_offsets(text: str, squeezed: str) -> list[int] | None:
    """For each character of the squeezed text, its offset in the original text (None: the same)."""
    if squeezed == text:
        return None
    where: list[int] = []
    for word in re.finditer(r"\S+", text):
        if where:
            where.append(word.start() - 1)  # the one space kept between words
        where.extend(range(word.start(), word.end()))
    return where


# ---- surface forms -------------------------------------------------------------------------------

def _surface_forms(vocab: Vocabulary) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Lower-cased surface form -> (the tags it can mean in vocabulary order, whether a tag's own)."""
    forms: dict[str, list[str]] = {}
    canonical: set[str] = set()
    bases = {base.lower() for tag in vocab.tags for base in vocab.surface_forms(tag)}
    for tag in vocab.tags:
        own = {base.lower() for base in vocab.surface_forms(tag)}
        for base in vocab.surface_forms(tag):
            for form in _spellings(base, _head_class(vocab.category(tag)), bases, own):
                owners = forms.setdefault(form, [])
                if tag not in owners:
                    owners.append(tag)
                if base == tag:
                    canonical.add(form)
    return {form: (tuple(tags), form in canonical) for form, tags in forms.items()}


def _spellings(base: str, head_class: str, bases: set[str], own: set[str]) -> list[str]:
    """Every inflected spelling of a base form: as written, opened up ("lap top") and dotted ("t.v.")."""
    spellings = [base, *_open_spellings(base, bases, own), *lexicon.dotted_initialism(base)]
    head = base.lower().split()[-1] if base.split() else ""
    if not lexicon.is_noun(head) and lexicon.verb_forms(head):
        head_class = "verb"  # a head that is no noun but a verb inflects as one
    return [form for spelling in spellings for form in lexicon.phrase_inflections(spelling, head_class)]


def _head_class(category: str | None) -> str:
    return {ACTION: "verb", ATTRIBUTE: "fixed"}.get(category, "noun")


def _open_spellings(word: str, bases: set[str], own: set[str]) -> list[str]:
    """A closed compound written as two words: "laptop" as "lap top", "motorcycle" as "motor cycle".

    A first half that is itself a surface form ("cat" of "catwalk": "a cat walks") or a colour
    ("green" of "greenhouse") would misread ordinary phrases, so such splits are made only when
    the second half already names the same tag ("cup cake" for "cupcake", a form of "cake").
    """
    if " " in word or "-" in word:
        return []
    return [f"{first} {second}" for first, second in lexicon.compound_splits(word)
            if first not in COLOUR_TERMS and (first not in bases or second in own)]
