"""The synthetic world: layout as img2dataset writes it, truth kept apart, captions that say the truth
when noise is off and are noisy at the configured rates when it is on."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from tagmill.engine.synth.world import (
    COLOURS,
    SCENE_PHRASES,
    SCENES,
    SHAPES,
    SynthConfig,
    plan_sample,
    synthesize,
    world_synonyms,
    world_vocabulary,
)

QUIET = dict(hallucination=0.0, omission=0.0, wrong_attribute=0.0)
JSON_FIELDS = {"url", "key", "caption", "status", "error_message", "width", "height",
               "original_width", "original_height", "sha256"}


def _plural(word: str) -> str:
    return word + "es" if word.endswith(("s", "x", "z", "ch", "sh")) else word + "s"


def _form_table() -> dict[tuple[str, ...], str]:
    """Every surface form, singular and plural, as a word tuple -> its canonical tag."""
    table = {}
    for tag, synonyms in world_synonyms().items():
        for form in (tag, *synonyms):
            table[tuple(form.split())] = tag
            table[tuple(_plural(form).split())] = tag
    return table


FORMS = _form_table()


def read_caption(caption: str) -> tuple[set[str], set[str]]:
    """A naive dictionary reading: (tags mentioned, shapes negated by "no X" / "without any X")."""
    words = re.findall(r"[a-z]+", caption.lower())
    found, negated, i = set(), set(), 0
    while i < len(words):
        for length in (2, 1):
            tag = FORMS.get(tuple(words[i:i + length]))
            if tag:
                is_negated = words[i - 1:i] == ["no"] or words[max(0, i - 2):i] == ["without", "any"]
                (negated if is_negated else found).add(tag)
                i += length
                break
        else:
            i += 1
    return found, negated


def _tar_members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def _samples(out: Path) -> dict[str, dict[str, bytes]]:
    """key -> {ext: bytes} over every shard, in shard order."""
    samples: dict[str, dict[str, bytes]] = {}
    for tar in sorted(out.glob("*.tar")):
        for name, data in _tar_members(tar):
            key, ext = name.split(".", 1)
            samples.setdefault(key, {})[ext] = data
    return samples


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, SynthConfig]:
    config = SynthConfig(n=25, seed=7, shard_size=10)
    out = tmp_path_factory.mktemp("synth")
    summary = synthesize(out, config)
    assert (summary.n, summary.shards) == (25, 3)
    assert summary.paths == tuple(str(out / f"{i:05d}.tar") for i in range(3))
    return out, config


def test_layout_matches_img2dataset(world):
    out, _ = world
    shards = [f"{i:05d}{suffix}" for i in range(3) for suffix in (".tar", ".parquet", "_stats.json")]
    assert sorted(p.name for p in out.iterdir()) == sorted(shards + ["truth.jsonl", "tags.txt", "synonyms.json"])
    names = [name for name, _ in _tar_members(out / "00002.tar")]
    assert names == [f"0000000{k}.{ext}" for k in range(20, 25) for ext in ("jpg", "json", "txt")]


def test_sample_json_follows_img2dataset(world):
    out, config = world
    for key, files in _samples(out).items():
        meta = json.loads(files["json"])
        assert set(meta) == JSON_FIELDS
        assert meta["key"] == key and meta["url"] == f"synth://{key}"
        assert meta["caption"] == files["txt"].decode("utf-8")
        assert meta["status"] == "success" and meta["error_message"] is None
        assert meta["width"] == meta["height"] == meta["original_width"] == config.image_size
        assert meta["sha256"] == hashlib.sha256(files["jpg"]).hexdigest()


def test_images_decode_at_the_configured_size(world):
    out, config = world
    for files in _samples(out).values():
        image = Image.open(io.BytesIO(files["jpg"]))
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (config.image_size,) * 2)


def test_parquet_and_stats_match_the_tars(world):
    out, _ = world
    samples = _samples(out)
    for shard in range(3):
        rows = pq.read_table(out / f"{shard:05d}.parquet").to_pylist()
        with tarfile.open(out / f"{shard:05d}.tar") as tar:
            keys = [m.name.split(".")[0] for m in tar.getmembers() if m.name.endswith(".json")]
        assert [row["key"] for row in rows] == keys
        assert rows == [json.loads(samples[key]["json"]) for key in keys]
        stats = json.loads((out / f"{shard:05d}_stats.json").read_text())
        assert stats["count"] == stats["successes"] == len(keys)
        assert stats["status_dict"] == {"success": len(keys)}
        assert {"failed_to_download", "failed_to_resize", "duration", "start_time", "end_time"} <= set(stats)


def test_truth_is_per_key_and_within_the_vocabulary(world):
    out, _ = world
    vocabulary = world_vocabulary()
    lines = [json.loads(line) for line in (out / "truth.jsonl").read_text().splitlines()]
    assert [line["key"] for line in lines] == list(_samples(out))
    for line in lines:
        tags = line["tags"]
        assert tags == sorted(set(tags)) and set(tags) <= set(vocabulary)
        assert len(set(tags) & set(SCENES)) == 1
        assert set(tags) & set(SHAPES) and set(tags) & set(COLOURS)
    assert (out / "tags.txt").read_text().splitlines() == vocabulary
    assert json.loads((out / "synonyms.json").read_text()) == world_synonyms()


def test_truth_never_enters_the_shards(world):
    out, _ = world
    for files in _samples(out).values():
        assert "tags" not in json.loads(files["json"])


def test_same_config_gives_byte_identical_files(tmp_path):
    config = SynthConfig(n=30, seed=3, shard_size=12)
    synthesize(tmp_path / "a", config)
    synthesize(tmp_path / "b", config)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_samples_do_not_depend_on_shard_size(tmp_path):
    synthesize(tmp_path / "a", SynthConfig(n=30, seed=3, shard_size=7))
    synthesize(tmp_path / "b", SynthConfig(n=30, seed=3, shard_size=30))
    assert (tmp_path / "a" / "truth.jsonl").read_bytes() == (tmp_path / "b" / "truth.jsonl").read_bytes()
    assert _samples(tmp_path / "a") == _samples(tmp_path / "b")


def test_different_seeds_differ():
    first = [plan_sample(SynthConfig(n=20, seed=1), i).caption for i in range(20)]
    second = [plan_sample(SynthConfig(n=20, seed=2), i).caption for i in range(20)]
    assert first != second


def test_noise_off_captions_say_exactly_the_truth(tmp_path):
    synthesize(tmp_path, SynthConfig(n=200, seed=5, **QUIET))
    truth = {json.loads(line)["key"]: json.loads(line)["tags"]
             for line in (tmp_path / "truth.jsonl").read_text().splitlines()}
    for key, files in _samples(tmp_path).items():
        found, negated = read_caption(files["txt"].decode("utf-8"))
        assert found == set(truth[key]), files["txt"]
        assert not negated & set(truth[key])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), index=st.integers(0, 10**6))
def test_noise_off_reading_recovers_truth_for_any_sample(seed, index):
    plan = plan_sample(SynthConfig(n=1, seed=seed, **QUIET), index)
    found, negated = read_caption(plan.caption)
    assert found == set(plan.tags)
    assert negated == ({plan.negated} if plan.negated else set())


def test_negated_shapes_are_always_absent():
    config = SynthConfig(n=300, seed=11, negation=1.0)
    negations = 0
    for index in range(config.n):
        plan = plan_sample(config, index)
        _, negated = read_caption(plan.caption)
        assert negated == ({plan.negated} if plan.negated else set()), plan.caption
        assert not negated & set(plan.tags)
        assert plan.negated not in {m.shape for m in plan.mentions}
        negations += bool(negated)
    assert negations > 0.9 * config.n


def _rates(config: SynthConfig) -> tuple[float, float, float]:
    """Over many captions: samples with a made-up shape, present shapes not named, and named
    colours that no object has."""
    made_up = missed = shapes = false_colours = colours = 0
    for index in range(config.n):
        plan = plan_sample(config, index)
        found, _ = read_caption(plan.caption)
        truth = set(plan.tags)
        made_up += bool((found - truth) & set(SHAPES))
        missed += len((truth - found) & set(SHAPES))
        shapes += len(truth & set(SHAPES))
        false_colours += len((found - truth) & set(COLOURS))
        colours += len(found & set(COLOURS))
    return made_up / config.n, missed / shapes, false_colours / max(colours, 1)


def test_hallucination_happens_at_roughly_its_rate():
    made_up, missed, false_colours = _rates(SynthConfig(n=2000, seed=1, hallucination=0.2, omission=0.0,
                                                        wrong_attribute=0.0, negation=0.0))
    assert 0.16 <= made_up <= 0.24
    assert missed == 0.0


def test_omission_happens_at_roughly_its_rate():
    # A shape drawn twice is missed only when both are left out, so the rate per shape is a bit lower.
    made_up, missed, false_colours = _rates(SynthConfig(n=2000, seed=2, hallucination=0.0, omission=0.3,
                                                        wrong_attribute=0.0))
    assert 0.2 <= missed <= 0.32
    assert made_up == 0.0 and false_colours == 0.0


def test_wrong_colours_happen_at_roughly_their_rate():
    made_up, missed, false_colours = _rates(SynthConfig(n=2000, seed=3, hallucination=0.0, omission=0.0,
                                                        wrong_attribute=0.1))
    assert 0.06 <= false_colours <= 0.14
    assert made_up == 0.0 and missed == 0.0


def test_default_noise_makes_some_captions_disagree_with_truth():
    config = SynthConfig(n=200, seed=4)
    plans = [plan_sample(config, i) for i in range(config.n)]
    wrong = sum(read_caption(p.caption)[0] != set(p.tags) for p in plans)
    assert 0.3 * config.n <= wrong < config.n


def test_captions_vary_in_wording_and_counts():
    plans = [plan_sample(SynthConfig(n=300, seed=6, **QUIET), i) for i in range(300)]
    captions = [p.caption for p in plans]
    assert len(set(captions)) == len(captions)
    assert any(re.search(r"\b(two|three|four) ", c, re.IGNORECASE) for c in captions)
    assert any(c[0].isupper() for c in captions) and any(c[0].islower() for c in captions)
    synonyms = [form for others in world_synonyms().values() for form in others]
    used = {form for form in synonyms
            if any(re.search(rf"\b({form}|{_plural(form)})\b", c.lower()) for c in captions)}
    assert len(used) >= 0.8 * len(synonyms)


def test_scene_phrases_use_only_the_scene_surface_forms():
    for scene, phrases in SCENE_PHRASES.items():
        for phrase in phrases:
            found, _ = read_caption(phrase)
            assert found == {scene}, phrase


def test_world_is_large_enough_and_consistent():
    vocabulary = world_vocabulary()
    assert len(SHAPES) >= 8 and len(COLOURS) >= 8 and len(SCENES) >= 6
    assert len(vocabulary) == len(set(vocabulary)) == len(SHAPES) + len(COLOURS) + len(SCENES)
    synonyms = world_synonyms()
    assert list(synonyms) == vocabulary
    forms = [f for tag, others in synonyms.items() for f in (tag, *others)]
    assert len(forms) == len(set(forms)), "a surface form must belong to one tag"


@pytest.mark.parametrize("bad", [dict(n=-1), dict(n=1, omission=1.5), dict(n=1, shard_size=0),
                                 dict(n=1, image_size=8), dict(n=1, hallucination=-0.1)])
def test_bad_configs_are_refused(bad):
    with pytest.raises(ValueError):
        SynthConfig(**bad)


def test_empty_world_writes_only_the_world_files(tmp_path):
    summary = synthesize(tmp_path, SynthConfig(n=0))
    assert (summary.n, summary.shards, summary.paths) == (0, 0, ())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synonyms.json", "tags.txt", "truth.jsonl"]
