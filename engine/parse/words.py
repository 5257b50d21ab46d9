"""The closed word classes the parse rules read: function words, and the few nouns and verbs that
change what a neighbouring tag means (a cue of negation, a likeness, a part, a goal)."""

from __future__ import annotations

NEGATION_CUES = frozenset({"no", "not", "without", "never", "nor", "none", "n't", "nobody", "nothing", "zero"})
# Words that close the scope of a negation before it reaches a tag.
SCOPE_BOUNDARIES = frozenset({",", ".", ";", ":", "!", "?", "but", "and", "while", "though", "although",
                              "which", "that", "who", "where", "except", "instead"})
# Words that carry a negation on to the next tag: "no cats or dogs".
NEGATION_CARRIERS = frozenset({"or", "nor", ","})
DETERMINERS = frozenset({"a", "an", "the", "any", "some", "one", "two"})
POSSESSIVES = frozenset({"his", "her", "its", "their", "my", "your", "our"})
DEMONSTRATIVES = frozenset({"this", "that", "these", "those"})
OBJECT_PRONOUNS = frozenset({"him", "her", "it", "them", "himself", "herself", "itself", "themselves"})
# Pronouns that are only ever subjects: the -s word after them is a verb ("she ties a ribbon").
SUBJECT_PRONOUNS = frozenset({"he", "she", "it", "who"})
PREPOSITIONS = frozenset({"about", "across", "along", "around", "at", "by", "down", "from", "in", "into", "off",
                          "on", "onto", "out", "over", "past", "through", "to", "toward", "towards", "under",
                          "up", "with"})
COORDINATORS = frozenset({"and", "or", ",", "&"})
QUOTES = frozenset({'"', "“", "”"})
# After "or", words that make it a count, not a second thing: "a dog or two".
ROUGH_COUNTS = frozenset({"two", "three", "four", "more", "so", "less", "fewer"})
LIKENESS_VERBS = frozenset({"dressed", "disguised", "costumed", "shaped", "made", "decorated"})
# Verbs that give something the form of a thing: "curled up into a ball" makes no ball.
SHAPING_VERBS = frozenset({"curl", "roll", "fold", "twist", "form", "ball"})
MADE_LIKENESSES = frozenset({"carved", "sculpted", "sculptured"})  # "a carved bear" is of wood or stone
DRAWN = frozenset({"drawn", "painted", "printed", "sketched", "stenciled", "stencilled", "etched", "embroidered"})
DEPICTIONS = frozenset({"costume", "statue", "sculpture", "figurine", "figure", "toy", "doll", "puppet",
                        "mascot", "balloon", "kite", "magnet", "ornament", "sticker", "decal", "logo",
                        "print", "pattern", "drawing", "painting", "cutout", "replica", "crossing", "shape",
                        "silhouette", "outline", "model", "sign"})
# Parts seen from inside a thing: "the aisle of a bus" is a view from within, not of the bus.
INTERIOR_PARTS = frozenset({"seat", "aisle", "dashboard", "cabin", "cockpit", "interior", "inside"})
# Verbs and adjectives before "for" that make what follows a goal: "waiting for the bus".
SEEKING_WORDS = frozenset({"wait", "await", "reach", "prepare", "ready", "dive", "lunge", "go", "jump", "look",
                           "search"})
PLAY_VERBS = frozenset({"play"})
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
