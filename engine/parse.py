"""Captions to tags: spaCy's tokenizer and phrase matcher over every surface form of every tag.

Surface forms are compiled once per vocabulary: each tag, each synonym, and their inflections from
spaCy's lookup lemmatizer (plurals for nouns, verb forms for actions), so matching a caption needs
no per-token lemmatisation. The longest match wins ("teddy bear" is not "bear"), negated mentions
("no people", "without a hat") are dropped, and a surface form shared by an object and an attribute
tag ("orange") goes to the attribute when a noun follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import spacy
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from tagmill.engine import lexicon
from tagmill.engine.vocab import ACTION, ATTRIBUTE, OBJECT, Vocabulary

NEGATION_CUES = frozenset({"no", "not", "without", "never", "nor", "none", "n't", "nobody", "nothing", "zero"})
# Words that close the scope of a negation before it reaches a tag.
SCOPE_BOUNDARIES = frozenset({",", ".", ";", ":", "!", "?", "but", "and", "while", "though", "although",
                              "which", "that", "who", "where", "except", "instead"})
# Words that carry a negation on to the next tag: "no cats or dogs".
NEGATION_CARRIERS = frozenset({"or", "nor", ","})
DETERMINERS = frozenset({"a", "an", "the", "any", "some", "one", "two"})
COORDINATORS = frozenset({"and", "or", ",", "&"})
LIKENESS_VERBS = frozenset({"dressed", "disguised", "costumed", "shaped", "made", "decorated"})
DEPICTIONS = frozenset({"costume", "statue", "sculpture", "figurine", "figure", "toy", "doll", "puppet",
                        "mascot", "balloon", "kite", "magnet", "ornament", "sticker", "decal", "logo",
                        "print", "pattern", "drawing", "painting", "cutout", "replica", "crossing", "shape",
                        "silhouette", "outline", "model", "sign"})
PLURAL_NOUNS = frozenset({"people", "police", "cattle", "sheep", "deer", "fish", "children", "clothes"})
MAX_NEGATION_DISTANCE = 4  # tokens between a cue and the tag it negates ("no two red balls")
MAX_CAPTION_CHARS = 10_000  # the parser's own guard; the pipeline's cap is configurable and lower


@dataclass(frozen=True, slots=True)
class Mention:
    """One tag found in a caption: where, through which words, and why it is ignored (None: it counts)."""

    tag: str
    text: str
    start: int  # character offsets into the caption
    end: int
    ignored: str | None = None  # "negated", "likeness" or "modifier"


class CaptionParser:
    """Turns captions into sorted canonical tags of one vocabulary."""

    def __init__(self, vocab: Vocabulary, nlp: spacy.Language | None = None):
        self.vocab = vocab
        self._nlp = nlp if nlp is not None else spacy.blank("en")
        self._matcher = PhraseMatcher(self._nlp.vocab, attr="LOWER")
        self._tags_of: dict[int, tuple[str, ...]] = {}
        strings = self._nlp.vocab.strings
        self._canonical_forms = {strings.add(f) for t in vocab.tags for f in _inflected(t, None)}
        for form, tags in _surface_forms(vocab).items():
            self._tags_of[strings.add(form)] = tags
            self._matcher.add(form, [self._nlp.make_doc(form)])

    def parse(self, caption: str) -> list[str]:
        return _tags(self.mentions(caption))

    def parse_many(self, captions: Iterable[str], batch_size: int = 256) -> Iterator[list[str]]:
        for doc in self._nlp.tokenizer.pipe((_clip(c) for c in captions), batch_size=batch_size):
            yield _tags(self._doc_mentions(doc))

    def mentions(self, caption: str) -> list[Mention]:
        """Every tag mention in the caption, ignored ones included with their reason."""
        return self._doc_mentions(self._nlp.make_doc(_clip(caption)))

    def _doc_mentions(self, doc: Doc) -> list[Mention]:
        spans = filter_spans([Span(doc, start, end, label=key) for key, start, end in self._matcher(doc)])
        mentions: list[Mention] = []
        negated = False
        previous_end = 0
        for span in spans:
            negated = _negated(doc, span.start, previous_end, negated)
            tag = self._pick_sense(doc, span)
            reason = "negated" if negated else _inside_word(doc, span) or self._non_literal(doc, span, tag)
            if reason is None and mentions and self._compound_head(mentions[-1], previous_end, span, tag):
                reason = "part"  # "toilet bowl", "microwave oven": one thing, named by the first tag
            mentions.append(Mention(tag, span.text, span.start_char, span.end_char, reason))
            previous_end = span.end
        return mentions

    def _pick_sense(self, doc: Doc, span: Span) -> str:
        """Of the tags a surface form can mean, the attribute one when a noun follows, else the other."""
        tags = self._tags_of[span.label]
        if len(tags) == 1:
            return tags[0]
        modifies_noun = span.end < len(doc) and lexicon.is_noun(doc[span.end].text)
        by_category = [t for t in tags if (self.vocab.category(t) == ATTRIBUTE) == modifies_noun]
        return (by_category or list(tags))[0]

    def _compound_head(self, previous: Mention, previous_end: int, span: Span, tag: str) -> bool:
        """An object tag right after another object tag names part of it, not a second thing."""
        things = (self.vocab.category(previous.tag), self.vocab.category(tag))
        return previous.ignored is None and previous_end == span.start and not {ATTRIBUTE, ACTION} & set(things)

    def _non_literal(self, doc: Doc, span: Span, tag: str) -> str | None:
        """Why a mention of an object tag does not say the object is there, if it does not."""
        category = self.vocab.category(tag)
        if category in (ATTRIBUTE, ACTION):
            return None
        if _after_likeness(doc, span.start) or _before_depiction(doc, span.end):
            return "likeness"
        word = doc[span.end - 1].lower_
        if lexicon.lemma(word) != word or word in PLURAL_NOUNS:
            return None  # a plural heads its phrase: "zebras stand", "people walk"
        if category == OBJECT and lexicon.is_adjective(word) and _used_as_adjective(doc, span):
            return "modifier"  # "orange cat", "baby elephant", "orange and white"
        via_synonym = span.label not in self._canonical_forms
        if via_synonym and span.end < len(doc) and lexicon.is_noun_head(doc[span.end].text):
            return "modifier"  # "baseball player" is a person, not a ball
        return None



def _used_as_adjective(doc: Doc, span: Span) -> bool:
    """Directly before a noun, or coordinated with an adjective ("orange and white", "white and orange")."""
    after = doc[span.end].lower_ if span.end < len(doc) else ""
    if after and lexicon.is_noun_form(after):
        return True
    neighbours = []
    if span.end + 1 < len(doc) and after in COORDINATORS:
        neighbours.append(doc[span.end + 1].lower_)
    if span.start >= 2 and doc[span.start - 1].lower_ in COORDINATORS:
        neighbours.append(doc[span.start - 2].lower_)
    return any(lexicon.is_adjective(w) for w in neighbours)


def _after_likeness(doc: Doc, start: int) -> bool:
    """ "shaped like a skateboard", "dressed as a giraffe": the thing is depicted, not present."""
    before = [t.lower_ for t in doc[max(0, start - 3):start]]
    while before and before[-1] in DETERMINERS:
        before.pop()
    if not before:
        return False
    if before[-1] == "like":
        return True
    previous = before[-2] if len(before) > 1 else ""
    return (before[-1] == "as" and previous in LIKENESS_VERBS) or (before[-1] == "of" and previous in DEPICTIONS)


def _inside_word(doc: Doc, span: Span) -> str | None:
    """A tag that is only part of a hyphenated word: "camera-man", "train-style"."""
    before = doc[span.start - 1] if span.start > 0 else None
    after = doc[span.end] if span.end < len(doc) else None
    joined_before = before is not None and before.text == "-" and not before.whitespace_ and span.start > 1 \
        and not doc[span.start - 2].whitespace_
    joined_after = after is not None and after.text == "-" and not doc[span.end - 1].whitespace_ \
        and not after.whitespace_ and span.end + 1 < len(doc)
    return "inside word" if joined_before or joined_after else None


def _before_depiction(doc: Doc, end: int) -> bool:
    """ "a giraffe costume", "a horse statue": a likeness of the thing, not the thing."""
    return end < len(doc) and lexicon.lemma(doc[end].lower_) in DEPICTIONS


def _negated(doc: Doc, start: int, previous_end: int, previous_negated: bool) -> bool:
    """Whether a negation cue before `start` (and after the previous mention) scopes over it."""
    window_start = max(previous_end, start - MAX_NEGATION_DISTANCE - 1)
    between = [t.lower_ for t in doc[window_start:start]]
    if previous_negated and between and all(w in NEGATION_CARRIERS or w in DETERMINERS for w in between):
        return True
    for word in reversed(between):
        if word in NEGATION_CUES:
            return True
        if word in SCOPE_BOUNDARIES:
            return False
    return False


def _tags(mentions: list[Mention]) -> list[str]:
    return sorted({m.tag for m in mentions if m.ignored is None})


def _clip(caption: str) -> str:
    return caption[:MAX_CAPTION_CHARS]


def _surface_forms(vocab: Vocabulary) -> dict[str, tuple[str, ...]]:
    """Lower-cased surface form -> the tags it can mean, in vocabulary order."""
    forms: dict[str, list[str]] = {}
    for tag in vocab.tags:
        for base in vocab.surface_forms(tag):
            for form in _inflected(base, vocab.category(tag)):
                owners = forms.setdefault(form, [])
                if tag not in owners:
                    owners.append(tag)
    return {form: tuple(tags) for form, tags in forms.items()}


def _inflected(phrase: str, category: str | None) -> list[str]:
    """The phrase, its hyphenated spelling, and the inflections of its last word."""
    words = phrase.lower().split()
    if not words:
        return []
    head = words[-1]
    if category == ACTION or (not lexicon.is_noun(head) and lexicon.verb_forms(head)):
        heads = (head, *lexicon.verb_forms(head))
    elif category == ATTRIBUTE:
        heads = (head,)
    else:
        heads = (head, *lexicon.noun_plurals(head))
    stems = [" ".join(words[:-1] + [h]) for h in heads]
    hyphenated = ["-".join(words[:-1] + [h]) for h in heads] if len(words) > 1 else []
    return list(dict.fromkeys(stems + hyphenated))
