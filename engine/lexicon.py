"""English word knowledge from spacy-lookups-data: lookup lemmas, their inflections, and word classes."""

from __future__ import annotations

from functools import lru_cache

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.util import load_language_data, registry

# Inflections that make a noun into a verb form or a comparative rather than a plural.
_NON_PLURAL_ENDINGS = ("ing", "ed", "er", "est")


@lru_cache(maxsize=1)
def lemma_table() -> dict[str, str]:
    """spaCy's English lookup lemmatizer table: word form -> lemma."""
    return dict(_english_table("lemma_lookup"))


@lru_cache(maxsize=1)
def _inflections() -> dict[str, tuple[str, ...]]:
    by_lemma: dict[str, list[str]] = {}
    for form, lemma in lemma_table().items():
        if form != lemma:
            by_lemma.setdefault(lemma, []).append(form)
    return {lemma: tuple(sorted(forms)) for lemma, forms in by_lemma.items()}


@lru_cache(maxsize=1)
def word_classes() -> dict[str, frozenset[str]]:
    """WordNet's word lists by class (noun, verb, adj, adv), as spacy-lookups-data ships them."""
    index = _english_table("lemma_index")
    return {pos: frozenset(index[pos]) for pos in ("noun", "verb", "adj", "adv")}


def _english_table(name: str) -> dict:
    """A table of spacy-lookups-data, read with its original string keys."""
    return load_language_data(registry.lookups.get("en")[name])


def lemma(word: str) -> str:
    lower = word.lower()
    return lemma_table().get(lower, lower)


def is_noun(word: str) -> bool:
    return word.lower() in word_classes()["noun"]


def is_adjective(word: str) -> bool:
    return word.lower() in word_classes()["adj"]


def is_noun_form(word: str) -> bool:
    """A noun or a plural of one, leaving out stop words, gerunds and participles ("walls", "cat")."""
    lower = word.lower()
    if lower in STOP_WORDS or lower.endswith(("ing", "ed")) or not lower.isalpha():
        return False
    return lower in word_classes()["noun"] or lemma(lower) in word_classes()["noun"]


def is_noun_head(word: str) -> bool:
    """Whether a word can head a noun phrase: a noun that is not a stop word, gerund or participle.

    WordNet lists many function words and verb forms among its nouns ("at", "sitting"); those
    are left out, and a plural counts only when its singular is not also a verb ("sits").
    """
    lower = word.lower()
    if lower in STOP_WORDS or lower.endswith(("ing", "ed")) or not lower.isalpha():
        return False
    if lower in word_classes()["noun"]:
        return True
    base = lemma(lower)
    return base != lower and base in word_classes()["noun"] and base not in word_classes()["verb"]


def noun_plurals(noun: str) -> tuple[str, ...]:
    """Plural forms of a noun: the lookup table's irregular and regular ones, else the regular rule."""
    lower = noun.lower()
    forms = [f for f in _inflections().get(lower, ()) if not f.endswith(_NON_PLURAL_ENDINGS)]
    return tuple(forms) if forms else (_regular_plural(lower),)


def verb_forms(verb: str) -> tuple[str, ...]:
    """Every inflected form the lookup table maps to this verb (runs, running, ran)."""
    return _inflections().get(verb.lower(), ())


def _regular_plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def is_verb(word: str) -> bool:
    return lemma(word) in word_classes()["verb"]
