"""Captions to tags: spaCy's tokenizer and phrase matcher over every surface form of every tag.

Surface forms are compiled once per vocabulary: each tag and synonym, the inflections of its last
word from spaCy's lookup tables (plurals for nouns, verb forms for actions), its open spelling when
it is a closed compound ("lap top"), its dotted one when it is an initialism ("t.v.") and its "of"
one when it is a compound of two nouns ("glasses of wine"), so matching needs no per-token
lemmatisation. The longest match wins ("teddy bear" is not "bear"); a
form shared by an object and an attribute tag ("orange") goes to the attribute before a noun.

Then the rules of `rules` (and the readings of `readings`) read the words around each match and set
aside, each with its reason, the mentions that do not say the thing is in the picture ("no people",
"a giraffe costume", "a man trains his dog").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

import spacy
from spacy.matcher import PhraseMatcher
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc

from tagmill.engine.parse import lexicon, rules
from tagmill.engine.parse.matches import Caption, Match
from tagmill.engine.vocab import ACTION, ATTRIBUTE, COLOUR_TERMS, Vocabulary

MAX_CAPTION_CHARS = 10_000  # the parser's own guard; the pipeline's cap is configurable and lower
CACHED_CHUNKS = 100_000  # distinct chunks whose split the captions' tokenizer remembers (some 25 MB)


@dataclass(frozen=True, slots=True)
class Mention:
    """One tag found in a caption: where, through which words, and why it is ignored (None: it counts)."""

    tag: str
    text: str
    start: int  # character offsets into the caption
    end: int
    ignored: str | None = None  # one of the reasons in the docstrings of rules and readings


class CaptionParser:
    """Turns captions into sorted canonical tags of one vocabulary."""

    def __init__(self, vocab: Vocabulary, nlp: spacy.Language | None = None):
        self.vocab = vocab
        self._nlp = nlp if nlp is not None else spacy.blank("en")
        self._tokenizer = _with_larger_cache(self._nlp.tokenizer)
        self._matcher = PhraseMatcher(self._nlp.vocab, attr="LOWER")
        self._category = {tag: vocab.category(tag) or _category_by_word(tag) for tag in vocab.tags}
        self._tags_of: dict[int, tuple[str, ...]] = {}
        self._canonical_forms: set[int] = set()
        self._compile(_surface_forms(vocab, self._category))

    def _compile(self, forms: dict[str, tuple[tuple[str, ...], bool]]) -> None:
        """Every surface form into the phrase matcher, split by the tokenizer that splits captions."""
        strings, tokenizer = self._nlp.vocab.strings, self._tokenizer
        for form, (tags, canonical) in forms.items():
            key = strings.add(form)
            self._tags_of[key] = tags
            if canonical:
                self._canonical_forms.add(key)
            self._matcher.add(form, _patterns(tokenizer, form))

    def parse(self, caption: str) -> list[str]:
        text = _squeeze(caption[:MAX_CAPTION_CHARS])
        return self._tags(text, self._tokenizer(text))

    def parse_many(self, captions: Iterable[str], batch_size: int = 256) -> Iterator[list[str]]:
        """The tags of each caption in turn (`batch_size` is kept for callers; tokenizing needs no batches)."""
        tokenize, tags = self._tokenizer, self._tags
        for caption in captions:
            text = _squeeze(caption[:MAX_CAPTION_CHARS])
            yield tags(text, tokenize(text))

    def mentions(self, caption: str) -> list[Mention]:
        """Every tag mention in the caption, ignored ones included with their reason."""
        text = _clip(caption)
        squeezed = _squeeze(text)
        doc = self._tokenizer(squeezed)
        read, reasons = self._read(squeezed, doc, self._matcher(doc))
        where = _original_offsets(text, squeezed)
        return [_mention(doc, text, where, m, r) for m, r in zip(read.matches, reasons)]

    def _tags(self, text: str, doc: Doc) -> list[str]:
        found = self._matcher(doc)
        if not found:
            return []
        caption, reasons = self._read(text, doc, found)
        return sorted({m.tag for m, r in zip(caption.matches, reasons) if r is None})

    def _read(self, text: str, doc: Doc, found: list[tuple[int, int, int]]) -> tuple[Caption, list[str | None]]:
        """The caption's longest matches and, for each, why it does not count (None: it counts)."""
        words = [t.lower_ for t in doc]
        match = self._match
        caption = Caption(text, doc, words, [match(words, key, start, end) for key, start, end in _longest(found)])
        return caption, rules.reasons(caption)

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


def _patterns(tokenizer: Tokenizer, form: str) -> list[Doc]:
    """The form as the tokenizer splits it, and as one token when it has full stops ("t.v.")."""
    patterns = [tokenizer(form)]
    if "." in form and " " not in form:
        patterns.append(Doc(tokenizer.vocab, words=[form]))
    return patterns


def _with_larger_cache(tokenizer: Tokenizer) -> Tokenizer:
    """The tokenizer, remembering more chunks.

    spaCy's tokenizer remembers how it split each distinct chunk (a word with its punctuation), up
    to `max_cache_size` chunks (10,000 by default); a chunk it does not remember goes through the
    prefix, suffix and infix expressions again, five times slower. Ten thousand chunks are soon
    taken (the surface forms of RAM's tags alone are 15,000), after which even "horse" is split anew
    in every caption.
    """
    tokenizer.max_cache_size = max(tokenizer.max_cache_size, CACHED_CHUNKS)
    return tokenizer


def _mention(doc: Doc, text: str, where: list[int] | None, match: Match, reason: str | None) -> Mention:
    """A match as a mention, with offsets into the caption as given (before spaces were squeezed)."""
    span = doc[match.start:match.end]
    start, end = span.start_char, span.end_char
    if where is not None:
        start, end = where[start], where[end - 1] + 1
    return Mention(match.tag, text[start:end], start, end, reason)


def _longest(found: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Non-overlapping matches, longer ones first and then earlier ones, in caption order."""
    if len(found) == 1:
        return found
    in_order = sorted(found, key=_start)
    if all(a[2] <= b[1] for a, b in zip(in_order, in_order[1:])):
        return in_order  # nothing overlaps, as in most captions
    taken: list[tuple[int, int, int]] = []
    for key, start, end in sorted(found, key=lambda f: (f[1] - f[2], f[1])):
        if all(end <= s or start >= e for _, s, e in taken):
            taken.append((key, start, end))
    return sorted(taken, key=_start)


def _start(found: tuple[int, int, int]) -> int:
    return found[1]


def _clip(caption: str) -> str:
    return caption[:MAX_CAPTION_CHARS]


def _squeeze(text: str) -> str:
    """Words one space apart: spaCy makes a token of every extra space, and "teddy  bear" would not match.

    Any whitespace but the plain space is unprintable, so a printable text without doubled or
    outer spaces is already squeezed (checked at C speed, unlike a regular expression).
    """
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return " ".join(text.split())


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

def _surface_forms(vocab: Vocabulary, category: dict[str, str | None]) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Lower-cased surface form -> (the tags it can mean in vocabulary order, whether a tag's own); each tag
    inflects as its category (given, or read from its word) says."""
    forms: dict[str, list[str]] = {}
    canonical: set[str] = set()
    bases = {base.lower() for tag in vocab.tags for base in vocab.surface_forms(tag)}
    for tag in vocab.tags:
        own = {base.lower() for base in vocab.surface_forms(tag)}
        for base in vocab.surface_forms(tag):
            for form in _spellings(base, _head_class(category[tag]), bases, own):
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
    forms = [form for spelling in spellings for form in lexicon.phrase_inflections(spelling, head_class)]
    return forms + (_of_spellings(base, bases) if head_class == "noun" else [])


def _of_spellings(base: str, bases: set[str]) -> list[str]:
    """A two-noun compound with its modifier after "of": "wine glass" as "glass of wine", "glasses of wine".

    English names a container by its content either way round ("a bottle of water" is a water
    bottle); the inverted form of any other compound ("bear of teddy") never occurs, so it costs
    nothing. Not when the modifier is a tag of its own: "a glass of wine" then names the wine too,
    which one match of the whole phrase would hide.
    """
    words = base.lower().split()
    if len(words) != 2 or not all(w.isalpha() for w in words) or not lexicon.is_noun(words[1]):
        return []
    modifier, head = words
    if modifier in bases:
        return []
    return [f"{form} of {modifier}" for form in (head, *lexicon.noun_plurals(head))]


def _category_by_word(tag: str) -> str | None:
    """For a tag without a category, what its last word says when it cannot be a noun: "grassy" an
    attribute, "unpacked" an action; None (object-like) for anything a noun can be."""
    head = tag.lower().split()[-1] if tag.split() else ""
    if not head.isalpha() or lexicon.is_noun(head) or lexicon.is_noun(lexicon.lemma(head)):
        return None
    if lexicon.is_adjective(head):
        return ATTRIBUTE
    return ACTION if lexicon.is_verb(head) else None


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
