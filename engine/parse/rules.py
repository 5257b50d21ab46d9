"""Which mentions count: the rules that read the words around each match.

Each rule sets aside, with its reason, a mention that does not say the thing is in the picture:

- negated: "no people", "without a hat", "no cats or dogs"
- inside word: "camera-man", "train-style"
- quoted: 'a sign that reads "tie"' cites a word
- hedged: "on a couch or chair" says that one of two things is there, not which
- part: "toilet bowl", "the keyboard of a laptop": one thing, named by its whole
- the readings of `readings` (verb, likeness, name, interior, sought, activity, kin, modifier),
  and a likeness or a modifier shared by coordination: "a statue of a boy and a girl",
  "an adult and baby moose"
"""

from __future__ import annotations

from spacy.tokens import Doc

from tagmill.engine.parse import lexicon
from tagmill.engine.parse.matches import Caption, Match
from tagmill.engine.parse.readings import non_literal
from tagmill.engine.parse.words import (COORDINATORS, DETERMINERS, MAX_NEGATION_DISTANCE, NEGATION_CARRIERS,
                                        NEGATION_CUES, QUOTES, ROUGH_COUNTS, SCOPE_BOUNDARIES)

__all__ = ["Caption", "Match", "reasons"]


def reasons(caption: Caption) -> list[str | None]:
    """For each match of the caption, why it does not count (None: it counts)."""
    found: list[str | None] = []
    for i in range(len(caption.matches)):
        found.append(reason(caption, i, found))
    _share_modifiers(caption, found)
    return found


def reason(caption: Caption, i: int, earlier: list[str | None]) -> str | None:
    """Why the i-th match does not count, or None when it does; `earlier` holds the reasons before it."""
    match = caption.matches[i]
    previous = earlier[-1] if earlier else None
    if caption.has_any(NEGATION_CUES) and _negated(caption, i, previous == "negated"):
        return "negated"
    if "-" in caption.cues and _inside_word(caption.doc, match.start, match.end):
        return "inside word"
    if caption.has_any(QUOTES) and _quoted(caption, match.start):
        return "quoted"
    if not match.is_thing:
        return None
    if previous == "likeness" and _coordinated_with_previous(caption, i):
        return "likeness"  # "a statue of a boy and a girl"
    hedged = "or" in caption.cues and _hedged(caption, i)
    return hedged or non_literal(caption, i) or _part(caption, i, previous)


def _share_modifiers(caption: Caption, found: list[str | None]) -> None:
    """ "an adult and baby moose": a bare singular joined by "and" to a modifier modifies the same noun.

    Only when that noun cannot be a verb: in "a man and woman stand", "stand" says what both do.
    """
    matches = caption.matches
    for i in range(len(matches) - 1, 0, -1):
        before, match = matches[i - 1], matches[i]
        if found[i] != "modifier" or found[i - 1] is not None or not before.is_thing:
            continue
        word = caption.words[before.end - 1]
        joined = caption.words[before.end:match.start] == ["and"] and lexicon.lemma(word) == word
        if joined and not lexicon.is_verb(caption.word(match.end)):
            found[i - 1] = "modifier"


def _negated(caption: Caption, i: int, previous_negated: bool) -> bool:
    """Whether a negation cue before the match (and after the previous match) scopes over it."""
    start = caption.matches[i].start
    previous_end = caption.matches[i - 1].end if i else 0
    between = caption.words[max(previous_end, start - MAX_NEGATION_DISTANCE - 1):start]
    if previous_negated and between and all(w in NEGATION_CARRIERS or w in DETERMINERS for w in between):
        return True
    for word in reversed(between):
        if word in NEGATION_CUES:
            return True
        if word in SCOPE_BOUNDARIES:
            return False
    return False


def _inside_word(doc: Doc, start: int, end: int) -> bool:
    """A tag that is only part of a hyphenated word: "camera-man", "train-style"."""
    joined_before = start > 1 and doc[start - 1].text == "-" and not doc[start - 1].whitespace_ \
        and not doc[start - 2].whitespace_
    joined_after = end + 1 < len(doc) and doc[end].text == "-" and not doc[end - 1].whitespace_ \
        and not doc[end].whitespace_
    return joined_before or joined_after


def _quoted(caption: Caption, start: int) -> bool:
    """Inside quotation marks a caption cites words, as a sign reads them: 'reads "tie"'."""
    marks = [i for i, w in enumerate(caption.words) if w in QUOTES]
    return any(a < start < b for a, b in zip(marks[::2], marks[1::2]))


def _coordinated_with_previous(caption: Caption, i: int) -> bool:
    between = caption.words[caption.matches[i - 1].end:caption.matches[i].start]
    return bool(between) and all(w in COORDINATORS or w in DETERMINERS for w in between)


def _hedged(caption: Caption, i: int) -> str | None:
    """One side of "X or Y" for two different things: the caption does not say which is there."""
    match, words = caption.matches[i], caption.words
    if caption.word(match.end) == "or":
        if caption.word(match.end + 1) in ROUGH_COUNTS and not caption.starts_thing(match.end + 2):
            return None  # "a dog or two"
        other = _skip(words, match.end + 1)
        return None if any(m.start == other and m.tag == match.tag for m in caption.matches) else "hedged"
    before = _skip_back(words, match.start - 1)
    if caption.word(before) == "or":
        return None if any(m.end == before and m.tag == match.tag for m in caption.matches) else "hedged"
    return None


def _part(caption: Caption, i: int, previous: str | None) -> str | None:
    """A thing named as part of another: "toilet bowl" (not "tables chairs"), "the keyboard of a laptop".

    Both words must be nouns ("a man riding" is no compound), and a head that names a doer
    ("motorcycle riders", "a kite surfer") is no part: it is what the compound names.
    """
    matches = caption.matches
    match = matches[i]
    if i and previous is None and matches[i - 1].end == match.start and matches[i - 1].is_thing:
        if _noun_compound(caption.words[match.start - 1], caption.words[match.end - 1]):
            return "part"
    if i + 1 < len(matches) and matches[i + 1].is_thing and _whole_follows(caption, match, matches[i + 1]):
        return "part"
    return None


def _noun_compound(modifier: str, head: str) -> bool:
    """A singular noun before a noun that is not a doer: "toilet bowl"; a plural lists ("tables chairs")."""
    if lexicon.lemma(modifier) != modifier or not lexicon.is_noun(modifier):
        return False
    return lexicon.is_noun_form(head) and not lexicon.is_agent_noun(head)


def _whole_follows(caption: Caption, part: Match, whole: Match) -> bool:
    """ "the keyboard of a laptop", "the last car of a train"."""
    words = caption.words
    if words[part.end:whole.start] not in (["of", "a"], ["of", "an"], ["of", "the"]):
        return False
    before = part.start - 1
    while before >= 0 and lexicon.is_adjective(words[before]) and words[before] != "the":
        before -= 1
    return caption.word(before) == "the"


def _skip(words: list[str], i: int) -> int:
    while i < len(words) and words[i] in DETERMINERS:
        i += 1
    return i


def _skip_back(words: list[str], i: int) -> int:
    while i >= 0 and words[i] in DETERMINERS:
        i -= 1
    return i
