"""Which mentions count: the rules that read the words around each match, and their word lists.

Each rule sets aside, with its reason, a mention that does not say the thing is in the picture:

- negated: "no people", "without a hat", "no cats or dogs"
- inside word: "camera-man", "train-style"
- quoted: 'a sign that reads "tie"' cites a word
- hedged: "on a couch or chair" says that one of two things is there, not which
- likeness: "shaped like a skateboard", "a giraffe costume", "a statue of a boy and a girl",
  "a carved bear", "a bow tie drawn on it", "curled up into a ball"
- name: "an Apple computer": a capitalised word before a noun is part of a name
- interior: "the aisle of a bus": a view from inside the thing
- sought: "waiting for the bus", "reaching for a ball": a goal, not yet reached
- activity: "playing baseball": a synonym without a determiner names the sport
- kin: "a giraffe and her baby": a relational noun takes its kind from its possessor
- modifier: "orange cat", "baseball player", "two baby bears", "an adult and a young zebra"
- part: "toilet bowl", "the keyboard of a laptop": one thing, named by its whole
"""

from __future__ import annotations

from dataclasses import dataclass

from spacy.tokens import Doc

from tagmill.engine.parse import lexicon
from tagmill.engine.vocab import ACTION, ATTRIBUTE, OBJECT

NEGATION_CUES = frozenset({"no", "not", "without", "never", "nor", "none", "n't", "nobody", "nothing", "zero"})
# Words that close the scope of a negation before it reaches a tag.
SCOPE_BOUNDARIES = frozenset({",", ".", ";", ":", "!", "?", "but", "and", "while", "though", "although",
                              "which", "that", "who", "where", "except", "instead"})
# Words that carry a negation on to the next tag: "no cats or dogs".
NEGATION_CARRIERS = frozenset({"or", "nor", ","})
DETERMINERS = frozenset({"a", "an", "the", "any", "some", "one", "two"})
POSSESSIVES = frozenset({"his", "her", "its", "their", "my", "your", "our"})
COORDINATORS = frozenset({"and", "or", ",", "&"})
QUOTES = frozenset({'"', "“", "”"})
# After "or", words that make it a count, not a second thing: "a dog or two".
ROUGH_COUNTS = frozenset({"two", "three", "four", "more", "so", "less", "fewer"})
LIKENESS_VERBS = frozenset({"dressed", "disguised", "costumed", "shaped", "made", "decorated"})
# Verbs that give something the form of a thing: "curled up into a ball" makes no ball.
SHAPING_VERBS = frozenset({"curl", "curls", "curled", "roll", "rolls", "rolled", "fold", "folds", "folded",
                           "twist", "twists", "twisted", "form", "forms", "formed", "ball", "balled"})
MADE_LIKENESSES = frozenset({"carved", "sculpted", "sculptured"})  # "a carved bear" is of wood or stone
DRAWN = frozenset({"drawn", "painted", "printed", "sketched", "stenciled", "stencilled", "etched", "embroidered"})
DEPICTIONS = frozenset({"costume", "statue", "sculpture", "figurine", "figure", "toy", "doll", "puppet",
                        "mascot", "balloon", "kite", "magnet", "ornament", "sticker", "decal", "logo",
                        "print", "pattern", "drawing", "painting", "cutout", "replica", "crossing", "shape",
                        "silhouette", "outline", "model", "sign"})
# Parts seen from inside a thing: "the aisle of a bus" is a view from within, not of the bus.
INTERIOR_PARTS = frozenset({"seat", "seats", "aisle", "aisles", "dashboard", "cabin", "cockpit", "interior"})
# Words before "for" that make what follows a goal: "waiting for the bus".
SEEKING_WORDS = frozenset({"wait", "waits", "waited", "waiting", "await", "awaits", "awaiting", "reach", "reaches",
                           "reached", "reaching", "prepare", "prepares", "prepared", "preparing", "ready", "dive",
                           "dives", "diving", "lunge", "lunges", "lunging", "go", "goes", "going", "jump", "jumps",
                           "jumping", "look", "looks", "looking", "search", "searches", "searching"})
PLAY_VERBS = frozenset({"play", "plays", "playing", "played"})
GAMES = frozenset({"game", "games", "match", "round"})
# Nouns that name someone by a tie to another: "her baby" is of the possessor's kind.
RELATIONAL_NOUNS = frozenset({"baby", "babies", "child", "children", "kid", "kids", "young", "offspring",
                              "mother", "mom", "mama", "father", "dad", "parent", "parents", "son", "daughter",
                              "calf", "calves", "cub", "cubs", "mate", "family"})
PLURAL_NOUNS = frozenset({"people", "police", "cattle", "sheep", "deer", "fish", "children", "clothes"})
PLURAL_QUANTIFIERS = frozenset({"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "several",
                                "many", "few", "multiple", "numerous", "various"})
PRONOUN_ONE = frozenset({"one", "ones"})  # "a baby one": the word before it is a modifier
# Nouns for a portion of the thing before them: "orange slices" are slices of an orange.
PORTIONS = frozenset({"slice", "slices", "wedge", "wedges", "peel", "peels", "piece", "pieces", "half", "halves",
                      "chunk", "chunks", "segment", "segments", "section", "sections", "quarter", "quarters",
                      "bite", "bites", "rind", "rinds"})
# Nouns for a part of the thing named before them: "a television screen" is on a television.
PARTS = frozenset({"screen", "screens", "door", "doors", "window", "windows", "wheel", "wheels", "tire", "tires",
                   "seat", "seats", "handle", "handles", "handlebars", "lid", "lids", "roof", "hood", "engine",
                   "leg", "legs", "frame", "tail", "wing", "wings", "keys", "buttons", "display", "cord", "strap",
                   "straps"})
MAX_NEGATION_DISTANCE = 4  # tokens between a cue and the tag it negates ("no two red balls")


@dataclass(frozen=True, slots=True)
class Match:
    """A longest match of a surface form: token positions, the tag it means, and how it was named."""

    start: int
    end: int
    tag: str
    category: str | None
    canonical: bool  # through a form of the tag itself, not of a synonym

    @property
    def is_thing(self) -> bool:
        return self.category not in (ATTRIBUTE, ACTION)


class Caption:
    """The lower-cased words of one caption and its matches, for the rules to read."""

    __slots__ = ("doc", "words", "matches")

    def __init__(self, doc: Doc, words: list[str], matches: list[Match]):
        self.doc, self.words, self.matches = doc, words, matches

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
        return any(m.start == position and m.is_thing for m in self.matches)


def reason(caption: Caption, i: int, earlier: list[str | None]) -> str | None:
    """Why the i-th match does not count, or None when it does; `earlier` holds the reasons before it."""
    match = caption.matches[i]
    previous = earlier[-1] if earlier else None
    if _negated(caption, i, previous == "negated"):
        return "negated"
    if _inside_word(caption.doc, match.start, match.end):
        return "inside word"
    if _quoted(caption, match.start):
        return "quoted"
    if not match.is_thing:
        return None
    if previous == "likeness" and _coordinated_with_previous(caption, i):
        return "likeness"  # "a statue of a boy and a girl"
    return _hedged(caption, i) or _non_literal(caption, i) or _part(caption, i, previous)


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
    if QUOTES.isdisjoint(caption.words):
        return False
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


def _non_literal(caption: Caption, i: int) -> str | None:
    """Why an object mention does not say the object is there, if it does not."""
    match = caption.matches[i]
    if _after_likeness(caption, match.start) or _before_depiction(caption.words, match.end):
        return "likeness"
    if _names_something_else(caption, match):
        return "name"
    before = caption.before(match.start)
    if len(before) > 1 and before[-1] == "of" and before[-2] in INTERIOR_PARTS:
        return "interior"  # "the back seat of a car"
    if len(before) > 1 and before[-1] == "for" and before[-2] in SEEKING_WORDS:
        return "sought"  # "waiting for the bus"
    if _names_activity(caption, match):
        return "activity"
    if _kin_of_another(caption, i):
        return "kin"
    word = caption.words[match.end - 1]
    if lexicon.lemma(word) != word or word in PLURAL_NOUNS:
        return None  # a plural heads its phrase: "zebras stand", "people walk"
    return "modifier" if _modifies(caption, match, word) else None


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
        return shaper in SHAPING_VERBS
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
    return before in PLAY_VERBS or (before == "of" and caption.word(match.start - 2) in GAMES)


def _kin_of_another(caption: Caption, i: int) -> bool:
    """ "a mother elephant and her baby", "a deer and its child": the relative is of the possessor's kind."""
    match = caption.matches[i]
    possessive = caption.word(match.start - 1)
    if match.end - match.start != 1 or caption.words[match.start] not in RELATIONAL_NOUNS:
        return False
    if possessive == "its":
        return True
    if possessive not in POSSESSIVES:
        return False
    antecedents = [m.tag for m in caption.matches[:i] if m.is_thing]
    return bool(antecedents) and antecedents[-1] != match.tag


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
    """Before a noun, or coordinated with an adjective: "orange and white", "an adult and a young zebra"."""
    after = caption.word(match.end)
    if after and (lexicon.is_noun_form(after) or after in PRONOUN_ONE):
        return True
    if after in COORDINATORS and _adjective_before_thing(caption, match.end + 1):
        return True
    before = caption.word(match.start - 2) if caption.word(match.start - 1) in COORDINATORS else ""
    return lexicon.is_adjective(before)


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


def _part(caption: Caption, i: int, previous: str | None) -> str | None:
    """A thing named as part of another: "toilet bowl" (not "tables chairs"), "the keyboard of a laptop"."""
    matches = caption.matches
    match = matches[i]
    if i and previous is None and matches[i - 1].end == match.start and matches[i - 1].is_thing:
        modifier = caption.words[match.start - 1]
        if lexicon.lemma(modifier) == modifier:  # a plural before a noun lists it: "tables chairs"
            return "part"
    if i + 1 < len(matches) and matches[i + 1].is_thing and _whole_follows(caption, match, matches[i + 1]):
        return "part"
    return None


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
