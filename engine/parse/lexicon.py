"""English word knowledge from spacy-lookups-data: lookup lemmas, their inflections, and word classes.

The tables keep no part of speech with a form, so the functions here combine them: WordNet's word
lists say which classes a word can belong to, its exception lists which irregular forms are noun
plurals, and the lookup lemmatizer everything else.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import ijson
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.util import load_language_data, registry

# Inflections that make a noun into a verb form or a comparative rather than a plural.
_NON_PLURAL_ENDINGS = ("ing", "ed", "er", "est")
COMMON_WORD = -13.5  # log probability: "tug" (-13.4) is common, "ana" (-15.5) is not
# Words whose classes are kept once looked up: the parse rules ask about the same few words again and again.
WORD_CACHE = 1 << 16


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


@lru_cache(maxsize=WORD_CACHE)
def lemma(word: str) -> str:
    lower = word.lower()
    return lemma_table().get(lower, lower)


@lru_cache(maxsize=WORD_CACHE)
def is_noun(word: str) -> bool:
    return word.lower() in word_classes()["noun"]


@lru_cache(maxsize=WORD_CACHE)
def is_adjective(word: str) -> bool:
    return word.lower() in word_classes()["adj"]


@lru_cache(maxsize=WORD_CACHE)
def is_adverb(word: str) -> bool:
    return word.lower() in word_classes()["adv"]


@lru_cache(maxsize=WORD_CACHE)
def is_noun_form(word: str) -> bool:
    """A noun or a plural of one, leaving out stop words, gerunds and participles ("walls", "cat")."""
    lower = word.lower()
    if lower in STOP_WORDS or lower.endswith(("ing", "ed")) or not lower.isalpha():
        return False
    return lower in word_classes()["noun"] or lemma(lower) in word_classes()["noun"]


@lru_cache(maxsize=WORD_CACHE)
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
    """Plural forms of a noun: the lookup table's irregular and regular ones, else the regular rule.

    The lookup table keeps no part of speech, so a form counts as a plural only when it ends in -s
    or WordNet lists it as an irregular noun plural: "bear" gets "bears", not "bore" or "born".
    A word that is already a plural ("kids", "skis") gets none.
    """
    lower = noun.lower()
    if is_plural(lower):
        return ()
    irregular = _irregular_plurals()
    regular = [f for f in _inflections().get(lower, ()) if f.endswith("s") and not f.endswith(_NON_PLURAL_ENDINGS)]
    forms = sorted({*regular, *irregular.get(lower, ())})
    return tuple(forms) if forms else (_regular_plural(lower),)


@lru_cache(maxsize=WORD_CACHE)
def is_plural(word: str) -> bool:
    """Whether the word is the plural of another noun ("kids", "men"), by the lookup tables."""
    lower = word.lower()
    base = lemma(lower)
    return base != lower and (lower in _irregular_forms() or (lower.endswith("s") and base in word_classes()["noun"]))


@lru_cache(maxsize=1)
def _irregular_plurals() -> dict[str, tuple[str, ...]]:
    """Noun -> its irregular plurals ("man" -> "men", "calf" -> "calves"), from WordNet's exception list."""
    by_noun: dict[str, list[str]] = {}
    for form, lemmas in _english_table("lemma_exc")["noun"].items():
        for base in lemmas:
            if base != form:
                by_noun.setdefault(base, []).append(form)
    return {noun: tuple(sorted(forms)) for noun, forms in by_noun.items()}


@lru_cache(maxsize=1)
def _irregular_forms() -> frozenset[str]:
    return frozenset(form for forms in _irregular_plurals().values() for form in forms)


def verb_forms(verb: str) -> tuple[str, ...]:
    """Every inflected form the lookup table maps to this verb (runs, running, ran)."""
    return _inflections().get(verb.lower(), ())


def _regular_plural(noun: str) -> str:
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and len(noun) > 1 and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


@lru_cache(maxsize=WORD_CACHE)
def is_verb(word: str) -> bool:
    return lemma(word) in word_classes()["verb"]


@lru_cache(maxsize=WORD_CACHE)
def is_agent_noun(word: str) -> bool:
    """A noun for a doer made from a verb with -er: "rider" (ride), "surfer", "batter" (bat)."""
    singular = lemma(word)
    if len(singular) < 5 or not singular.endswith("er"):
        return False
    stem, verbs = singular[:-2], word_classes()["verb"]
    doubled = stem[-1] == stem[-2] and stem[:-1] in verbs
    return stem in verbs or stem + "e" in verbs or doubled


def phrase_inflections(phrase: str, head_class: str) -> list[str]:
    """The phrase, its hyphenated spelling, and the inflections of its last word, lower-cased.

    `head_class` says how the last word inflects: "noun" (plurals), "verb" (every verb form) or
    "fixed" (not at all, as for attributes).
    """
    words = phrase.lower().split()
    if not words:
        return []
    head = words[-1]
    inflected = {"noun": noun_plurals, "verb": verb_forms}.get(head_class, lambda _: ())(head)
    heads = (head, *inflected)
    stems = [" ".join(words[:-1] + [h]) for h in heads]
    hyphenated = ["-".join(words[:-1] + [h]) for h in heads] if len(words) > 1 else []
    return list(dict.fromkeys(stems + hyphenated))


def compound_splits(word: str, shortest: int = 3) -> list[tuple[str, str]]:
    """Ways to read a closed compound as two common nouns: "laptop" -> ("lap", "top").

    Each half must be a singular noun that is not also an adverb ("leftover" is not "left over"),
    and a common word by spaCy's unigram probabilities, which drops chance splits ("ban ana").
    """
    lower = word.lower()
    if not lower.isalpha():
        return []
    halves = ((lower[:cut], lower[cut:]) for cut in range(shortest, len(lower) - shortest + 1))
    return [(first, second) for first, second in halves if _compound_half(first) and _compound_half(second)]


def _compound_half(word: str) -> bool:
    return is_noun(word) and not is_adverb(word) and not is_plural(word) and word.lower() in common_words()


@lru_cache(maxsize=1)
def common_words() -> frozenset[str]:
    """The words whose log probability in spaCy's English unigram table is COMMON_WORD or more.

    The table lists a million words from the most to the least probable, so it is streamed and read
    only down to the first word below COMMON_WORD (some twenty thousand), not loaded whole.
    """
    words = set()
    with _open_table("lexeme_prob") as table:
        for word, probability in ijson.kvitems(table, "", use_float=True):
            if probability < COMMON_WORD:
                break
            words.add(word)
    return frozenset(words)


def _open_table(name: str) -> BinaryIO:
    """A table of spacy-lookups-data as a byte stream (it ships them gzipped, as `load_language_data` reads them)."""
    path = Path(registry.lookups.get("en")[name])
    return open(path, "rb") if path.exists() else gzip.open(path.with_name(path.name + ".gz"))


def dotted_initialism(word: str) -> list[str]:
    """An initialism of two to four consonants spelled with full stops: "tv" -> "t.v.", "t.v"."""
    lower = word.lower()
    if not (2 <= len(lower) <= 4 and lower.isalpha()) or set(lower) & set("aeiouy"):
        return []
    dotted = ".".join(lower)
    return [dotted + ".", dotted]
