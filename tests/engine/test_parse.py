"""The caption parser: surface forms, longest match, and every reason a mention is set aside."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from tagmill.engine.parse.parser import CaptionParser
from tagmill.engine.synth.world import SynthConfig, plan_sample, world_synonyms, world_vocabulary
from tagmill.engine.vocab import ATTRIBUTE, OBJECT, Vocabulary

THINGS = ("person", "cat", "dog", "bear", "teddy bear", "mouse", "knife", "sink", "bus", "car", "train",
          "hat", "ball", "orange", "cake", "cup", "laptop", "keyboard", "toilet", "bowl", "couch", "chair",
          "motorcycle", "bicycle", "tv", "table", "apple", "elephant", "giraffe", "tie")
SYNONYMS = {
    "person": ("man", "men", "woman", "people", "child", "children", "baby", "adult", "player"),
    "cat": ("kitten",),
    "ball": ("baseball",),
    "cake": ("cupcake",),
    "couch": ("sofa",),
    "bicycle": ("bike", "cycle"),
    "tv": ("television",),
}


def parser(tags=THINGS, synonyms=None, categories=None) -> CaptionParser:
    synonyms = SYNONYMS if synonyms is None else synonyms
    categories = {t: OBJECT for t in tags} if categories is None else categories
    return CaptionParser(Vocabulary(tuple(tags), synonyms, categories))


@pytest.fixture(scope="module")
def things() -> CaptionParser:
    return parser()


def reasons(p: CaptionParser, caption: str) -> dict[str, str | None]:
    """Mention text -> why it is ignored (None: it counts)."""
    return {m.text: m.ignored for m in p.mentions(caption)}


# ---- forms and matching --------------------------------------------------------------------------

@pytest.mark.parametrize("caption, tags", [
    ("two cats and three dogs", ["cat", "dog"]),
    ("men with knives chasing mice", ["knife", "mouse", "person"]),  # irregular plurals
    ("some children and their kittens", ["cat", "person"]),
    ("a teddy bear next to a bear", ["bear", "teddy bear"]),
    ("a teddy bear on a chair", ["chair", "teddy bear"]),  # longest match, no "bear"
    ("Teddy Bears On A COUCH", ["couch", "teddy bear"]),  # case
    ("a teddy-bear on the sofa", ["couch", "teddy bear"]),  # hyphenated spelling, synonym
    ("a man typing on a lap top", ["laptop", "person"]),  # closed compound written open
    ("a cup cake on a plate", ["cake"]),  # open "cupcake" is a cake, not a cup
    ("a lamp and a t.v. in a room", ["tv"]),
    ("a T.V. on a stand", ["tv"]),
])
def test_forms(things, caption, tags):
    assert things.parse(caption) == tags


def test_verb_forms_are_not_plurals(things):
    assert things.parse("the boat sank near the shore") == []
    assert things.parse("a calf was born in the barn") == []


def test_a_tag_split_open_only_when_it_cannot_misread():
    p = parser(("cat", "catwalk"), synonyms={})
    assert p.parse("a cat walks on the fence") == ["cat"]
    assert p.parse("models on a catwalk") == ["catwalk"]


def test_mentions_give_offsets_into_the_caption_as_written(things):
    caption = "  A  teddy   bear\tand a\ncat "
    mentions = things.mentions(caption)
    assert [(m.tag, m.text) for m in mentions] == [("teddy bear", "teddy   bear"), ("cat", "cat")]
    assert all(caption[m.start:m.end] == m.text for m in mentions)


def test_parse_many_agrees_with_parse(things):
    captions = ["a cat on a couch", "no dogs here", "", "a man and a woman on a bike"] * 3
    assert list(things.parse_many(captions, batch_size=2)) == [things.parse(c) for c in captions]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gives_sorted_tags_of_the_vocabulary(text):
    p = _shared_parser()
    tags = p.parse(text)
    assert tags == sorted(set(tags)) and set(tags) <= set(THINGS)
    assert all(text[m.start:m.end] == m.text for m in p.mentions(text))


def _shared_parser() -> CaptionParser:
    if not hasattr(_shared_parser, "instance"):
        _shared_parser.instance = parser()
    return _shared_parser.instance


# ---- negation, hedges and quotes -----------------------------------------------------------------

@pytest.mark.parametrize("caption, tags", [
    ("a man without a hat", ["person"]),
    ("no cats or dogs, just a bear", ["bear"]),
    ("there is no cat, but a dog", ["dog"]),
    ("a kitchen without any knives or cups", []),
])
def test_negation(things, caption, tags):
    assert things.parse(caption) == tags


def test_negated_mentions_keep_their_reason(things):
    assert reasons(things, "a man without a hat") == {"man": None, "hat": "negated"}


def test_or_between_two_things_says_neither_is_certain(things):
    assert reasons(things, "a cat sleeping on a couch or chair") == {"cat": None, "couch": "hedged",
                                                                      "chair": "hedged"}
    assert things.parse("a man or woman on a bike") == ["bicycle", "person"]  # either way a person
    assert things.parse("a dog or two in a car") == ["car", "dog"]


def test_quoted_words_are_cited_not_shown(things):
    assert reasons(things, 'a wall sign that reads "tie" near a car') == {"tie": "quoted", "car": None}


# ---- things that are not there -------------------------------------------------------------------

@pytest.mark.parametrize("caption, mention", [
    ("a cake shaped like a bus", "bus"),
    ("a man dressed as a giraffe", "giraffe"),
    ("an elephant costume", "elephant"),
    ("a statue of a man and a dog", "dog"),  # the likeness carries over "and"
    ("a carved bear on a shelf", "bear"),
    ("a fire hydrant with a bow tie drawn on it", "tie"),
    ("the kitten curled up into a ball", "ball"),
])
def test_likeness(things, caption, mention):
    assert reasons(things, caption)[mention] == "likeness"


def test_a_depiction_word_used_as_a_verb_is_not_a_likeness(things):
    assert things.parse("a man crossing the street behind a bus") == ["bus", "person"]


@pytest.mark.parametrize("caption, mention, reason", [
    ("an Apple computer on a desk", "Apple", "name"),
    ("two people in the aisle of a bus", "bus", "interior"),
    ("people waiting for the train", "train", "sought"),
    ("a cat reaching for a ball", "ball", "sought"),
    ("kids playing baseball in a park", "baseball", "activity"),
    ("an elephant and her baby", "baby", "kin"),
    ("a deer with its child", "child", "kin"),
])
def test_other_ways_of_not_being_there(things, caption, mention, reason):
    assert reasons(things, caption)[mention] == reason


def test_a_capitalised_tag_counts_in_a_title_cased_caption(things):
    assert things.parse("An Apple On A Table") == ["apple", "table"]


def test_a_tag_name_for_a_game_still_names_the_object():
    p = parser(("frisbee", "person"), synonyms={"person": ("man",)})
    assert p.parse("a man playing frisbee") == ["frisbee", "person"]


def test_kin_of_the_same_kind_counts(things):
    assert things.parse("a woman holding her baby") == ["person"]


# ---- modifiers and parts -------------------------------------------------------------------------

def test_word_sense_orange_as_an_object():
    p = parser(("orange", "cat", "bowl"), synonyms={})
    assert reasons(p, "an orange cat") == {"orange": "modifier", "cat": None}
    assert reasons(p, "an orange and white cat") == {"orange": "modifier", "cat": None}
    assert p.parse("an orange in a bowl") == ["bowl", "orange"]
    assert p.parse("a bowl of orange slices") == ["bowl", "orange"]  # slices of an orange


def test_word_sense_orange_as_an_attribute():
    p = CaptionParser(Vocabulary(("orange", "cat"), {}, {"orange": ATTRIBUTE, "cat": OBJECT}))
    assert p.parse("an orange cat") == ["cat", "orange"]


def test_word_sense_orange_as_both():
    p = CaptionParser(Vocabulary(("orange", "orange fruit", "cat"), {"orange fruit": ("orange",)},
                                 {"orange": ATTRIBUTE, "orange fruit": OBJECT, "cat": OBJECT}))
    assert p.parse("an orange cat") == ["cat", "orange"]
    assert p.parse("a cat next to an orange") == ["cat", "orange fruit"]


@pytest.mark.parametrize("caption, tags", [
    ("a baseball player at bat", ["person"]),  # a synonym before a noun describes it
    ("two baby bears in the grass", ["bear"]),
    ("an adult and a young giraffe", ["giraffe"]),
    ("a baby one next to its mother", []),
    ("a television screen in a bus", ["bus", "tv"]),  # a part: the whole is there
    ("a baseball inside", ["ball"]),  # an adverb is no head noun
    ("a baby smiles at the camera", ["person"]),  # after "a", an -s word is a verb
])
def test_synonym_modifiers(things, caption, tags):
    assert things.parse(caption) == tags


@pytest.mark.parametrize("caption, tags", [
    ("a white toilet bowl", ["toilet"]),
    ("a kitten on the keyboard of a laptop", ["cat", "laptop"]),
    ("a kitchen with tables chairs and a sink", ["chair", "sink", "table"]),  # a list, not a compound
])
def test_parts_are_named_by_their_whole(things, caption, tags):
    assert things.parse(caption) == tags


def test_hyphenated_words_are_one_word(things):
    assert reasons(things, "a camera-man films a train-style bus") == {"man": "inside word", "train": "inside word",
                                                                       "bus": None}


# ---- the synthetic world -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world() -> CaptionParser:
    synonyms = {tag: tuple(forms) for tag, forms in world_synonyms().items() if forms}
    return CaptionParser(Vocabulary(tuple(world_vocabulary()), synonyms))


def test_world_captions(world):
    small = CaptionParser(Vocabulary(("circle", "square", "star", "red", "blue", "orange", "grass", "brick wall"),
                                     {"circle": ("ball", "disc")}))
    assert small.parse("two red stars and an orange ball on the grass") == ["circle", "grass", "orange", "red",
                                                                            "star"]
    assert small.parse("no triangles here, just a blue square against a brick wall") == ["blue", "brick wall",
                                                                                         "square"]


def test_world_parser_reads_what_every_quiet_caption_says(world):
    config = SynthConfig(n=400, seed=3, hallucination=0.2, omission=0.3, wrong_attribute=0.1, negation=0.5)
    for index in range(config.n):
        plan = plan_sample(config, index)
        said = {tag for m in plan.mentions for tag in (m.shape, m.colour)} | ({plan.scene} if plan.scene_mentioned else set())
        assert set(world.parse(plan.caption)) == said, plan.caption


# ---- verbs, kin, shared modifiers, compounds -----------------------------------------------------

@pytest.mark.parametrize("caption, mention", [
    ("a man trains his dog", "trains"),  # a singular subject and an object: a verb
    ("she ties a bow", "ties"),  # a subject pronoun
    ("a skier skis down a hill", "skis"),  # "a" opens the subject, a preposition follows
])
def test_an_s_form_between_subject_and_object_is_a_verb(caption, mention):
    p = parser(("person", "dog", "train", "tie", "skis"), synonyms={"person": ("man", "skier"), "skis": ("ski",)})
    assert reasons(p, caption)[mention] == "verb"


@pytest.mark.parametrize("caption, tags", [
    ("two trains on the tracks", ["train"]),
    ("the bears that are playing in the water", ["bear"]),  # "that" relates, it is no object
    ("a man and his trains", ["person", "train"]),
])
def test_plurals_stay_things(things, caption, tags):
    assert things.parse(caption) == tags


def test_kin_of_a_kind_outside_the_vocabulary(things):
    assert reasons(things, "a ewe and her child in a field") == {"child": "kin"}
    assert things.parse("a father looking at his child") == ["person"]  # a relative says no kind


def test_a_modifier_is_shared_over_and(things):
    assert reasons(things, "an adult and baby giraffe") == {"adult": "modifier", "baby": "modifier",
                                                            "giraffe": None}
    assert things.parse("a man and woman stand on the beach") == ["person"]  # "stand" is what they do


def test_an_object_word_before_an_adjective_and_a_noun_describes_it():
    p = parser(("orange", "table"), synonyms={})
    assert reasons(p, "an orange floral pattern") == {"orange": "modifier"}
    assert p.parse("an orange sitting on a table") == ["orange", "table"]


def test_a_doer_heads_its_compound_and_a_part_does_not():
    p = parser(("motorcycle", "person", "toilet", "bowl"), synonyms={"person": ("rider",)})
    assert reasons(p, "two motorcycle riders on a road") == {"motorcycle": None, "riders": None}
    assert reasons(p, "a toilet bowl") == {"toilet": None, "bowl": "part"}


def test_a_compound_named_with_of():
    assert parser(("wine glass", "pizza"), synonyms={}).parse("two glasses of wine and a pizza") == ["pizza",
                                                                                                 "wine glass"]
    both = parser(("wine glass", "wine"), synonyms={})  # the content is a tag of its own: it is named
    assert both.parse("a glass of wine") == ["wine"]


def test_tags_without_categories_take_one_from_their_word():
    p = CaptionParser(Vocabulary(("man", "riding", "horse", "grassy", "field")))
    assert reasons(p, "a man riding a horse in a grassy field") == {"man": None, "riding": None, "horse": None,
                                                                   "grassy": None, "field": None}


def test_tags_without_categories_inflect_as_their_word_reads():
    p = CaptionParser(Vocabulary(("unpacked", "grassy", "dog")))
    assert p.parse("two dogs, the bags unpacked on a grassy hill") == ["dog", "grassy", "unpacked"]
    assert p.parse("the unpackeds and grassies") == []


def test_unusual_spaces_are_squeezed(things):
    assert things.parse("a\u00a0teddy\u00a0bear on a\tcouch") == ["couch", "teddy bear"]


def test_the_captions_tokenizer_splits_as_the_pipeline_does(things):
    pipeline = things._nlp.tokenizer
    for text in ("don't stop, U.S. t.v. e-mail (a cat)!", "a teddy-bear's hat", "I'm here..."):
        assert [t.text for t in things._tokenizer(text)] == [t.text for t in pipeline(text)]
