"""English word knowledge from spacy-lookups-data: lemmas, plurals, word classes, spellings."""

from __future__ import annotations

import pytest

from tagmill.engine.parse import lexicon


@pytest.mark.parametrize("noun, plurals", [
    ("cat", {"cats"}),
    ("bus", {"buses"}),
    ("man", {"men"}),
    ("mouse", {"mice"}),
    ("knife", {"knives"}),
    ("calf", {"calves"}),
])
def test_noun_plurals(noun, plurals):
    assert plurals <= set(lexicon.noun_plurals(noun))


def test_plurals_leave_out_verb_forms():
    assert set(lexicon.noun_plurals("bear")) == {"bears"}  # not "bore", "born"
    assert "sank" not in lexicon.noun_plurals("sink")


def test_a_plural_has_no_plural():
    assert lexicon.is_plural("kids") and lexicon.is_plural("men")
    assert lexicon.noun_plurals("kids") == ()
    assert not lexicon.is_plural("bus")


def test_an_unknown_noun_gets_the_regular_plural():
    assert lexicon.noun_plurals("zzyzxbox") == ("zzyzxboxes",)


def test_word_classes():
    assert lexicon.is_noun("giraffe") and not lexicon.is_adjective("giraffe")
    assert lexicon.is_adjective("orange") and lexicon.is_noun("orange")
    assert lexicon.is_adverb("inside") and lexicon.is_verb("running")
    assert lexicon.lemma("Running") == "run"


def test_noun_heads_leave_out_function_words_and_verb_forms():
    assert lexicon.is_noun_head("player") and lexicon.is_noun_head("zebras")
    assert not lexicon.is_noun_head("at") and not lexicon.is_noun_head("sitting")
    assert not lexicon.is_noun_head("sits")


def test_phrase_inflections():
    assert lexicon.phrase_inflections("Teddy bear", "noun") == ["teddy bear", "teddy bears", "teddy-bear",
                                                                 "teddy-bears"]
    assert {"runs", "running", "ran"} <= set(lexicon.phrase_inflections("run", "verb"))
    assert lexicon.phrase_inflections("red", "fixed") == ["red"]
    assert lexicon.phrase_inflections("  ", "noun") == []


def test_compound_splits():
    assert lexicon.compound_splits("laptop") == [("lap", "top")]
    assert lexicon.compound_splits("snowboard") == [("snow", "board")]
    assert lexicon.compound_splits("giraffe") == []
    assert lexicon.compound_splits("t-shirt") == []


def test_compound_splits_want_two_common_nouns():
    assert lexicon.compound_splits("leftover") == []  # "over" is an adverb: "a bag left over the chair"
    assert lexicon.compound_splits("banana") == []  # "ana" is too rare a word to be meant
    assert lexicon.compound_splits("handshake") == [("hand", "shake")]  # not "hands hake"


def test_common_words_are_every_word_of_the_whole_table_at_or_above_the_cut():
    """Only the head of the table (sorted by probability) is read; the whole of it agrees."""
    table = lexicon._english_table("lexeme_prob")
    assert lexicon.common_words() == {word for word, p in table.items() if p >= lexicon.COMMON_WORD}
    assert {"the", "giraffe", "tug"} <= lexicon.common_words() and "ana" not in lexicon.common_words()


def test_dotted_initialism():
    assert lexicon.dotted_initialism("TV") == ["t.v.", "t.v"]
    assert lexicon.dotted_initialism("cat") == []
    assert lexicon.dotted_initialism("x") == []
