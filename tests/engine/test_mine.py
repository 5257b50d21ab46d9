"""Vocabulary mining on a small synthetic corpus whose term frequencies are known from its templates."""

from __future__ import annotations

from collections import Counter

import pytest

from tagmill.engine.parse.mine import TermCounter, TermCounts, select_vocabulary
from tagmill.engine.vocab import ACTION, ATTRIBUTE, OBJECT, SCENE

# (caption, how many times) -- 200 captions in all.
TEMPLATES = [
    ("a dog on the grass", 30),
    ("two dogs on the beach", 20),
    ("traffic lights over the road", 24),
    ("a red car by the road", 8),
    ("a red bus", 16),
    ("a red kite", 14),
    ("a red boat on the water", 12),
    ("a man running in the park", 26),
    ("a car and a dog", 16),
    ("the car next to the bus", 16),
    ("a giraffe", 3),
    ("a boat", 15),
]
CORPUS = [caption for caption, times in TEMPLATES for _ in range(times)]

# Captions containing each term, summed from the templates above.
EXPECTED_COUNTS = {
    "dog": 30 + 20 + 16, "red": 8 + 16 + 14 + 12, "car": 8 + 16 + 16, "road": 24 + 8, "bus": 16 + 16,
    "park": 26, "run": 26, "man": 26, "grass": 30, "beach": 20, "boat": 12 + 15, "kite": 14, "water": 12,
    "traffic": 24, "light": 24, "traffic light": 24, "giraffe": 3,
}


@pytest.fixture(scope="module")
def counts() -> TermCounts:
    return TermCounter().count(CORPUS)


def test_corpus_has_two_hundred_captions(counts):
    assert len(CORPUS) == 200
    assert counts.captions == 200


def test_counts_are_document_frequencies(counts):
    assert dict(counts.terms) == EXPECTED_COUNTS


def test_frequent_nouns_in_frequency_order(counts):
    vocab = select_vocabulary(counts, size=100, min_count=5)
    assert vocab.source == "mined"
    assert vocab.tags[:4] == ("dog", "red", "car", "bus")  # 66, 50, 40, then 32 (ties broken by name)
    assert {"dog", "car", "bus", "road", "grass", "boat", "man", "kite", "water"} <= set(vocab.tags)
    assert all(vocab.category(t) == OBJECT for t in ("dog", "car", "bus", "boat", "kite", "man"))


def test_plurals_merge_into_the_singular(counts):
    vocab = select_vocabulary(counts, size=100, min_count=5)
    assert "dogs" not in vocab.tags and "lights" not in vocab.tags
    assert counts.terms["dog"] == 66


def test_cohesive_compound_is_found(counts):
    vocab = select_vocabulary(counts, size=100, min_count=5)
    assert "traffic light" in vocab.tags
    assert vocab.category("traffic light") == OBJECT


def test_loose_pair_is_not_a_compound(counts):
    vocab = select_vocabulary(counts, size=100, min_count=5)
    assert "red car" not in vocab.tags  # "red car" in 8 captions, "red" in 50, "car" in 40
    assert not [t for t in vocab.tags if t.startswith("red ")]


def test_cohesion_decides_between_counted_pairs():
    counts = TermCounts(terms=Counter({
        "red": 60, "car": 40, "red car": 8,  # 8 < 0.25 * 40: a loose pair
        "traffic": 24, "light": 30, "traffic light": 20,  # 20 >= 0.25 * 24: holds together
    }))
    counts.uses.update({"red": 60, "car": 40, "traffic": 24, "light": 30})
    counts.roles.update({("red", "noun"): 60, ("car", "noun"): 40, ("traffic", "noun"): 24, ("light", "noun"): 30})
    tags = select_vocabulary(counts, size=10, min_count=5).tags
    assert "traffic light" in tags
    assert "red car" not in tags


def test_singular_compound_is_found():
    counts = TermCounter().count(["a traffic light at the crossing"] * 6 + ["a car"] * 6)
    assert "traffic light" in select_vocabulary(counts, size=10, min_count=5).tags


def test_categories_from_usage(counts):
    vocab = select_vocabulary(counts, size=100, min_count=5)
    assert vocab.category("red") == ATTRIBUTE  # always before a noun
    assert vocab.category("run") == ACTION  # always "running"
    assert vocab.category("park") == SCENE  # always after "in"
    assert "running" not in vocab.tags


def test_size_keeps_the_most_frequent(counts):
    vocab = select_vocabulary(counts, size=3, min_count=5)
    assert vocab.tags == ("dog", "red", "car")


def test_min_count(counts):
    assert "giraffe" not in select_vocabulary(counts, size=100, min_count=5).tags
    assert "giraffe" in select_vocabulary(counts, size=100, min_count=3).tags
    strict = select_vocabulary(counts, size=100, min_count=40)
    assert set(strict.tags) == {"dog", "red", "car"}


def test_nothing_reaches_min_count(counts):
    with pytest.raises(ValueError, match="no term occurs in at least 201 of 200 captions"):
        select_vocabulary(counts, size=100, min_count=201)
    with pytest.raises(ValueError, match="no term occurs"):
        select_vocabulary(TermCounts(), size=10, min_count=1)


def test_deterministic(counts):
    again = TermCounter().count(list(reversed(CORPUS)))
    assert again == counts
    assert select_vocabulary(again, 100, 5) == select_vocabulary(counts, 100, 5)


def test_merge_adds_up(counts):
    counter = TermCounter()
    merged = counter.count(CORPUS[:77]).merge(counter.count(CORPUS[77:]))
    assert merged == counts
    assert merged.captions == 200
    assert select_vocabulary(merged, 100, 5) == select_vocabulary(counts, 100, 5)


def test_merge_of_literal_counts():
    a = TermCounts(Counter({"dog": 2}), Counter({("dog", "noun"): 2}), Counter({"dog": 2}), captions=3)
    b = TermCounts(Counter({"dog": 1, "cat": 4}), Counter({("cat", "noun"): 4}), Counter({"cat": 5}), captions=4)
    assert a.merge(b) is a
    assert a.terms == Counter({"dog": 3, "cat": 4})
    assert a.roles == Counter({("dog", "noun"): 2, ("cat", "noun"): 4})
    assert a.uses == Counter({"dog": 2, "cat": 5})
    assert a.captions == 7
