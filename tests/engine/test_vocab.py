"""Vocabularies: RAM-format tag lists, synonyms files and the vocab.json round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagmill.engine.vocab import (
    ATTRIBUTE,
    OBJECT,
    SCENE,
    Vocabulary,
    VocabularyError,
    read_synonyms,
    read_tag_list,
)

RAM_TAG_LIST = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ram" / "ram_tag_list.txt"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---- tag lists -----------------------------------------------------------------------------------

def test_tag_list_line_number_is_class_index(tmp_path):
    tags = read_tag_list(write(tmp_path / "tags.txt", "dog\n  traffic light \ncat\n"))
    assert tags == ("dog", "traffic light", "cat")
    assert Vocabulary(tags).index() == {"dog": 0, "traffic light": 1, "cat": 2}


def test_tag_list_allows_trailing_blank_lines(tmp_path):
    assert read_tag_list(write(tmp_path / "tags.txt", "dog\ncat\n\n   \n\n")) == ("dog", "cat")


def test_tag_list_without_final_newline(tmp_path):
    assert read_tag_list(write(tmp_path / "tags.txt", "dog\ncat")) == ("dog", "cat")


def test_blank_line_inside_tag_list_names_its_line(tmp_path):
    path = write(tmp_path / "tags.txt", "dog\ncat\n\nbird\n")
    with pytest.raises(VocabularyError, match=r"tags\.txt:3: empty tag line"):
        read_tag_list(path)


def test_tag_list_that_is_not_utf8(tmp_path):
    path = tmp_path / "tags.txt"
    path.write_bytes("dog\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(VocabularyError, match="cannot read tag list"):
        read_tag_list(path)


def test_missing_tag_list(tmp_path):
    with pytest.raises(VocabularyError, match="cannot read tag list"):
        read_tag_list(tmp_path / "absent.txt")


def test_duplicate_tags_are_an_error(tmp_path):
    with pytest.raises(VocabularyError, match="'dog' is listed twice"):
        Vocabulary.from_files(write(tmp_path / "tags.txt", "dog\ncat\ndog\n"))
    with pytest.raises(VocabularyError, match="listed twice"):
        Vocabulary(("a", "b", "a"))


@pytest.mark.parametrize("tags", [(), ("dog", ""), ("dog", "  "), ("dog", 3)])
def test_empty_or_invalid_tags(tags):
    with pytest.raises(VocabularyError):
        Vocabulary(tags)


def test_real_ram_tag_list_loads():
    if not RAM_TAG_LIST.is_file():
        pytest.skip(f"RAM's tag list is not at {RAM_TAG_LIST} (reference data, not shipped with the repo)")
    vocab = Vocabulary.from_files(RAM_TAG_LIST)
    assert len(vocab) == 4585
    assert len(set(vocab.tags)) == 4585


# ---- synonyms ------------------------------------------------------------------------------------

def test_synonyms_file_is_read_and_stripped(tmp_path):
    path = write(tmp_path / "syn.json", json.dumps({"dog": [" puppy ", "hound"]}))
    assert read_synonyms(path) == {"dog": ("puppy", "hound")}
    vocab = Vocabulary.from_files(write(tmp_path / "tags.txt", "dog\ncat\n"), path)
    assert vocab.synonyms == {"dog": ("puppy", "hound")}
    assert vocab.surface_forms("dog") == ("dog", "puppy", "hound")
    assert vocab.surface_forms("cat") == ("cat",)


@pytest.mark.parametrize("data, message", [
    (["dog", "puppy"], "must be a JSON object"),
    ("dog", "must be a JSON object"),
    ({"dog": "puppy"}, "synonyms of 'dog' must be a list of non-empty strings"),
    ({"dog": ["puppy", 3]}, "synonyms of 'dog' must be a list"),
    ({"dog": ["puppy", "  "]}, "synonyms of 'dog' must be a list"),
    ({"dog": None}, "synonyms of 'dog' must be a list"),
    ({"dog": {"puppy": 1}}, "synonyms of 'dog' must be a list"),
])
def test_badly_shaped_synonyms(tmp_path, data, message):
    path = write(tmp_path / "syn.json", json.dumps(data))
    with pytest.raises(VocabularyError, match=message):
        read_synonyms(path)


def test_synonyms_file_that_is_not_json(tmp_path):
    with pytest.raises(VocabularyError, match="cannot read"):
        read_synonyms(write(tmp_path / "syn.json", "{dog: puppy"))


def test_synonyms_for_unknown_tags(tmp_path):
    path = write(tmp_path / "syn.json", json.dumps({"dog": ["puppy"], "unicorn": ["pony"]}))
    with pytest.raises(VocabularyError, match="not in the vocabulary: \\['unicorn'\\]"):
        Vocabulary.from_files(write(tmp_path / "tags.txt", "dog\ncat\n"), path)


def test_with_synonyms_merges_without_repeats():
    vocab = Vocabulary(("dog", "cat", "car"), synonyms={"dog": ("puppy",)})
    merged = vocab.with_synonyms({"dog": ("hound", "puppy"), "cat": ("kitty",)})
    assert merged.synonyms == {"cat": ("kitty",), "dog": ("puppy", "hound")}
    assert merged.tags == vocab.tags
    assert vocab.synonyms == {"dog": ("puppy",)}  # the original is unchanged
    with pytest.raises(VocabularyError, match="not in the vocabulary"):
        vocab.with_synonyms({"unicorn": ("pony",)})


# ---- categories ----------------------------------------------------------------------------------

def test_category_given_wins_over_colour_default():
    vocab = Vocabulary(("red", "Blue", "dog", "beach"), categories={"red": OBJECT, "beach": SCENE})
    assert vocab.category("red") == OBJECT
    assert vocab.category("Blue") == ATTRIBUTE
    assert vocab.category("beach") == SCENE
    assert vocab.category("dog") is None


def test_unknown_category_is_an_error():
    with pytest.raises(VocabularyError, match="unknown tag categories \\['animal'\\]"):
        Vocabulary(("dog",), categories={"dog": "animal"})


# ---- vocab.json ----------------------------------------------------------------------------------

def test_vocab_json_round_trip(tmp_path):
    vocab = Vocabulary(
        tags=("dog", "traffic light", "caf\u00e9", "red"),
        synonyms={"dog": ("puppy", "hound")},
        categories={"dog": OBJECT, "red": ATTRIBUTE},
        source="mined",
    )
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocabulary.load(path) == vocab
    assert Vocabulary.from_json(json.loads(path.read_text(encoding="utf-8"))) == vocab
    assert Vocabulary.from_files(path) == vocab
    assert "caf\u00e9" in path.read_text(encoding="utf-8")


def test_vocab_json_with_extra_synonyms_file(tmp_path):
    path = tmp_path / "vocab.json"
    Vocabulary(("dog", "cat"), synonyms={"dog": ("puppy",)}).save(path)
    syn = write(tmp_path / "syn.json", json.dumps({"dog": ["hound"], "cat": ["kitty"]}))
    vocab = Vocabulary.from_files(path, syn)
    assert vocab.synonyms == {"cat": ("kitty",), "dog": ("puppy", "hound")}


@pytest.mark.parametrize("data, message", [
    ([], "no 'tags' list"),
    ({"tags": "dog"}, "no 'tags' list"),
    ({"version": 99, "tags": ["dog"]}, "not one this tagmill reads"),
    ({"tags": ["dog"], "synonyms": {"dog": "puppy"}}, "synonyms of 'dog'"),
    ({"tags": ["dog"], "synonyms": {"cat": ["kitty"]}}, "not in the vocabulary"),
    ({"tags": ["dog", 5]}, "invalid tag 5"),
])
def test_invalid_vocab_json(data, message):
    with pytest.raises(VocabularyError, match=message):
        Vocabulary.from_json(data, "vocab.json")


@pytest.mark.parametrize("data", [
    {"version": "1", "tags": ["dog"]},
    {"tags": ["dog"], "categories": ["object"]},
])
def test_vocab_json_with_wrongly_typed_fields(data):
    with pytest.raises(VocabularyError):
        Vocabulary.from_json(data, "vocab.json")


def test_unreadable_vocab_json(tmp_path):
    with pytest.raises(VocabularyError, match="cannot read"):
        Vocabulary.load(write(tmp_path / "vocab.json", "{not json"))
