"""Readings of an object word that do not put the object in the picture.

- verb: "a man trains his dog", "a skier skis down a hill": an -s form after a singular subject
- likeness: "shaped like a skateboard", "a giraffe costume", "a carved bear", "curled up into a ball"
- name: "an Apple computer": a capitalised word before a noun is part of a name
- interior: "the aisle of a bus": a view from inside the thing
- sought: "waiting for the bus", "reaching for a ball": a goal, not yet reached
- activity: "playing baseball": a synonym without a determiner names the sport
- kin: "a giraffe and her baby", "a ewe and her kid": a relational noun takes its possessor's kind
- modifier: "orange cat", "an orange floral pattern", "baseball player", "two baby bears"
"""

from __future__ import annotations

from tagmill.engine.parse import lexicon
from tagmill.engine.parse.matches import Caption, Match
from tagmill.engine.parse.words import (COORDINATORS, DEMONSTRATIVES, DEPICTIONS, DETERMINERS, DRAWN, GAMES,
                                        INTERIOR_PARTS, LIKENESS_VERBS, MADE_LIKENESSES, OBJECT_PRONOUNS,
                                        PARTS, PLAY_VERBS, PLURAL_NOUNS, PLURAL_QUANTIFIERS, PORTIONS,
                                        POSSESSIVES, PREPOSITIONS, PRONOUN_ONE, RELATIONAL_NOUNS, SEEKING_WORDS,
                                        SHAPING_VERBS, SUBJECT_PRONOUNS)
from tagmill.engine.vocab import OBJECT

OBJECT_STARTS = (DETERMINERS | POSSESSIVES | DEMONSTRATIVES | OBJECT_PRONOUNS) - {"that"}  # "that" may relate
LIKENESS_CUES = frozenset({"like", "into", "as", "of"}) | MADE_LIKENESSES
GOAL_OR_VIEW_CUES = frozenset({"of", "for"})


def non_literal(caption: Caption, i: int) -> str | None:
    """Why an object mention does not say the object is there, if it does not."""
    match = caption.matches[i]
    if _reads_as_verb(caption, match):
        return "verb"
    if caption.has_any(LIKENESS_CUES) and _after_likeness(caption, match.start):
        return "likeness"
    if _before_depiction(caption.words, match.end):
        return "likeness"
    if caption.has_inner_capital and _names_something_else(caption, match):
        return "name"
    view = caption.has_any(GOAL_OR_VIEW_CUES) and _goal_or_view(caption, match)
    return view or _relation(caption, i) or _modifier(caption, match)


def _goal_or_view(caption: Caption, match: Match) -> str | None:
    """ "the back seat of a car", "the inside of a plane" (interior), "waiting for the bus" (sought)."""
    before = caption.before(match.start)
    if len(before) < 2:
        return None
    if before[-1] == "of" and _interior_part(before):
        return "interior"
    if before[-1] == "for" and lexicon.lemma(before[-2]) in SEEKING_WORDS:
        return "sought"
    return None


def _interior_part(before: list[str]) -> bool:
    """The noun before "of" names a part seen from within; a word that is also an adverb is that noun
    only after a determiner: "the inside of a bus", not "standing inside of a bus"."""
    part = before[-2]
    if lexicon.lemma(part) not in INTERIOR_PARTS:
        return False
    return not lexicon.is_adverb(part) or (len(before) > 2 and before[-3] in DETERMINERS)


def _relation(caption: Caption, i: int) -> str | None:
    match = caption.matches[i]
    if _names_activity(caption, match):
        return "activity"
    return "kin" if _kin_of_another(caption, i) else None


def _modifier(caption: Caption, match: Match) -> str | None:
    word = caption.words[match.end - 1]
    if lexicon.lemma(word) != word or word in PLURAL_NOUNS:
        return None  # a plural heads its phrase: "zebras stand", "people walk"
    return "modifier" if _modifies(caption, match, word) else None


# ---- verb --------------------------------------------------------------------------------------

def _reads_as_verb(caption: Caption, match: Match) -> bool:
    """An -s form of a noun that is also a verb is that verb after a subject pronoun ("she ties a
    bow"), or after a singular noun when an object follows ("a man trains his dog") or, when "a"
    opens the subject, a preposition ("a skier skis down a hill"). A plural after a noun needs
    none of these: "the dog treats on a plate".
    """
    word = caption.words[match.start]
    if match.end - match.start != 1 or not word.endswith("s") or lexicon.lemma(word) == word:
        return False
    if not lexicon.is_verb(word):
        return False
    position = _subject_before(caption, match.start)
    subject, after = caption.word(position), caption.word(match.end)
    if subject in SUBJECT_PRONOUNS:
        return True
    if not _singular_noun(subject):
        return False
    return after in OBJECT_STARTS or (after in PREPOSITIONS and _opens_with_article(caption, position))


def _subject_before(caption: Caption, position: int) -> int:
    """Where the subject of a verb ends: the word before it, past one adverb in -ly ("a man carefully ties")."""
    before = caption.word(position - 1)
    return position - 2 if before.endswith("ly") and lexicon.is_adverb(before) else position - 1


def _opens_with_article(caption: Caption, position: int) -> bool:
    """Whether "a" or "an" opens the noun phrase ending here, past adjectives and nouns."""
    start = position - 1
    while start > position - 4 and _describes_a_noun(caption.word(start)):
        start -= 1
    return caption.word(start) in ("a", "an")


def _describes_a_noun(word: str) -> bool:
    return _is_adjective_form(word) or lexicon.is_noun_head(word)


def _singular_noun(word: str) -> bool:
    """A singular noun that is not also an adjective ("brown" in "two brown bears that ...")."""
    if not lexicon.is_noun_head(word) or lexicon.is_adjective(word):
        return False
    return not lexicon.is_plural(word) and word not in PLURAL_NOUNS


# ---- likeness ----------------------------------------------------------------------------------

def _after_likeness(caption: Caption, start: int) -> bool:
    """ "shaped like a skateboard", "a carved bear", "curled up into a ball": no such thing is there."""
    before = caption.before(start)
    if not before:
        return False
    last, previous = before[-1], before[-2] if len(before) > 1 else ""
    if last == "like" or last in MADE_LIKENESSES:
        return True
    if last == "into":
        shaper = before[-3] if previous == "up" and len(before) > 2 else previous
        return lexicon.lemma(shaper) in SHAPING_VERBS
    return (last == "as" and previous in LIKENESS_VERBS) or (last == "of" and previous in DEPICTIONS)


def _before_depiction(words: list[str], end: int) -> bool:
    """ "a giraffe costume", "a horse statue", "horse crossing": a likeness of the thing, not the thing.

    A depiction word in -ing is a noun only at the end of a phrase or before another noun ("horse
    crossing sign"); anywhere else it is a verb: "people crossing in front of a taxi".
    """
    word = words[end] if end < len(words) else ""
    following = words[end + 1] if end + 1 < len(words) else ""
    if word in DRAWN and following in ("on", "onto"):
        return True  # "a bow tie drawn on it"
    if word not in DEPICTIONS and lexicon.lemma(word) not in DEPICTIONS:
        return False
    return not word.endswith("ing") or not following.isalpha() or lexicon.is_noun_head(following)


# ---- names, activities, kin --------------------------------------------------------------------

def _names_something_else(caption: Caption, match: Match) -> bool:
    """A capitalised word inside the caption before a noun is part of a name: "an Apple computer".

    Captions written all in capitals or in title case say nothing this way.
    """
    doc = caption.doc
    if match.start == 0 or not doc[match.start].is_title or doc[match.start - 1].is_punct:
        return False
    if not _can_head(caption, match) or not lexicon.is_noun_head(caption.word(match.end)):
        return False
    letters = [t for t in doc if t.is_alpha]
    return sum(t.is_title or t.is_upper for t in letters) * 2 < len(letters)


def _names_activity(caption: Caption, match: Match) -> bool:
    """ "playing baseball", "a game of football": a synonym without a determiner names the game.

    A tag's own name keeps its object reading ("playing frisbee" needs a frisbee); a synonym that
    is also the name of a sport says nothing about the object when it names the sport.
    """
    word = caption.words[match.end - 1]
    if match.canonical or match.end - match.start != 1 or lexicon.lemma(word) != word:
        return False
    before = caption.word(match.start - 1)
    return lexicon.lemma(before) in PLAY_VERBS or (before == "of" and caption.word(match.start - 2) in GAMES)


def _kin_of_another(caption: Caption, i: int) -> bool:
    """ "a mother elephant and her baby", "a ewe and her kid": the relative is of the possessor's kind.

    The possessor is the last thing named before; when no tag was named, the caption's first noun,
    which then names something outside the vocabulary, unless it is a relative itself ("a father
    looking at his child" says nothing of a kind).
    """
    match = caption.matches[i]
    possessive = caption.word(match.start - 1)
    if match.end - match.start != 1 or caption.words[match.start] not in RELATIONAL_NOUNS:
        return False
    if possessive == "its":
        return True
    if possessive not in POSSESSIVES:
        return False
    antecedents = [m.tag for m in caption.matches[:i] if m.is_thing]
    if antecedents:
        return antecedents[-1] != match.tag
    possessor = next((w for w in caption.words[:match.start - 1] if lexicon.is_noun_head(w)), "")
    return bool(possessor) and possessor not in RELATIONAL_NOUNS


# ---- modifiers ---------------------------------------------------------------------------------

def _modifies(caption: Caption, match: Match, word: str) -> bool:
    """An object word used to describe what follows: "orange cat", "baseball player", "a baby one"."""
    after = caption.word(match.end)
    if after in PORTIONS or not _can_head(caption, match):
        return False  # "orange slices" are of an orange; "a toy plane flies", "a bike inside"
    if match.category == OBJECT and lexicon.is_adjective(word) and _used_as_adjective(caption, match):
        return True
    if match.canonical or after in PARTS:
        return False  # "a television screen", "the fridge door": the whole is there
    if caption.word(match.start - 1) in PLURAL_QUANTIFIERS and caption.starts_thing(match.end):
        return True  # "two baby bears": a singular after "two" describes the plural that follows
    return lexicon.is_noun_head(after) or after in PRONOUN_ONE


def _can_head(caption: Caption, match: Match) -> bool:
    """Whether the word after a match may be the noun the match describes.

    Not an adverb ("a bike inside"), and not an -s form when "a" or "an" opens the phrase: the
    article wants a singular head, so in "a toy plane flies" the -s word is a verb.
    """
    after = caption.word(match.end)
    if lexicon.is_adverb(after) and not caption.starts_thing(match.end):
        return False
    if not after.endswith("s") or lexicon.lemma(after) == after:
        return True
    position = match.start - 1
    while position > match.start - 4 and lexicon.is_noun_head(caption.word(position)):
        position -= 1
    while position > match.start - 4 and _is_adjective_form(caption.word(position)):
        position -= 1
    return caption.word(position) not in ("a", "an")


def _used_as_adjective(caption: Caption, match: Match) -> bool:
    """Before a noun, or before another adjective and a noun, or coordinated with an adjective:
    "orange cat", "an orange floral pattern", "orange and white", "an adult and a young zebra"."""
    after = caption.word(match.end)
    if after and (lexicon.is_noun_form(after) or after in PRONOUN_ONE):
        return True
    if _plain_adjective(after) and lexicon.is_noun_form(caption.word(match.end + 1)):
        return True
    if after in COORDINATORS and _adjective_before_thing(caption, match.end + 1):
        return True
    before = caption.word(match.start - 2) if caption.word(match.start - 1) in COORDINATORS else ""
    return lexicon.is_adjective(before)


def _plain_adjective(word: str) -> bool:
    """An adjective that is no participle: "a plane flying low" is a plane that flies."""
    return lexicon.is_adjective(word) and not word.endswith(("ing", "ed"))


def _adjective_before_thing(caption: Caption, position: int) -> bool:
    """An adjective here, or a determiner, adjectives and a tagged thing: not "a plane and a large sphere"."""
    if lexicon.is_adjective(caption.word(position)):
        return True
    if caption.word(position) not in DETERMINERS:
        return False
    first = position = position + 1
    while _is_adjective_form(caption.word(position)):
        position += 1
    return position > first and caption.starts_thing(position)


def _is_adjective_form(word: str) -> bool:
    """An adjective or its comparative or superlative ("younger")."""
    return bool(word) and (lexicon.is_adjective(word) or lexicon.is_adjective(lexicon.lemma(word)))
