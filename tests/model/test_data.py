"""Reading shards: the stable split, sample decoding, batching, and finding the shards."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from model_helpers import jpeg_bytes, one_torch_thread, png_bytes, sample, shard_json, write_tar  # noqa: F401
from tagmill.model.data import (
    Batch,
    SampleDecoder,
    ShardError,
    collate,
    in_split,
    iterate_batches,
    make_loader,
    shard_paths,
)

TAGS = ["circle", "red", "beach", "night sky"]
INDEX = {tag: i for i, tag in enumerate(TAGS)}
KEYS = [f"{i:09d}" for i in range(10_000)]


def _decoder(**options) -> SampleDecoder:
    return SampleDecoder(INDEX, 32, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], **options)


# ---- in_split ------------------------------------------------------------------------------

def test_split_is_stable_and_holds_roughly_the_holdout_share():
    held = [key for key in KEYS if in_split(key, "holdout", 0.1)]
    assert held == [key for key in KEYS if in_split(key, "holdout", 0.1)]
    assert 0.09 <= len(held) / len(KEYS) <= 0.11
    assert all(in_split(key, "train", 0.1) != in_split(key, "holdout", 0.1) for key in KEYS)
    assert all(in_split(key, "all", 0.1) for key in KEYS)


def test_a_larger_holdout_keeps_every_sample_held_out_before():
    small = {key for key in KEYS if in_split(key, "holdout", 0.05)}
    large = {key for key in KEYS if in_split(key, "holdout", 0.2)}
    assert small < large
    assert 0.18 <= len(large) / len(KEYS) <= 0.22


def test_no_holdout_trains_on_everything():
    assert not any(in_split(key, "holdout", 0.0) for key in KEYS)
    assert all(in_split(key, "train", 0.0) for key in KEYS)


# ---- SampleDecoder -------------------------------------------------------------------------

def test_decoder_gives_an_image_tensor_a_multi_hot_target_and_the_key():
    image, target, key, caption = _decoder()(sample("k1", ["red", "beach", "not in vocab"], jpeg_bytes((40, 30))))
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    torch.testing.assert_close(image, torch.ones(3, 32, 32), rtol=0, atol=0.02)  # white, normalised to 1
    assert target.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert key == "k1" and caption == ""  # the sample has no captions


def test_decoder_reads_other_formats_and_modes():
    for data, ext in [(png_bytes(), "png"), (jpeg_bytes(mode="L", color=128), "jpg")]:
        image, target, _, _ = _decoder()(sample("k", ["circle"], data, ext=ext))
        assert image.shape == (3, 32, 32)
        assert target.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_augmented_images_keep_their_shape():
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((48, 48)).convert("RGB").save(buffer, format="PNG")
    decoder = _decoder(augment=True)
    for _ in range(5):
        image, _, _, _ = decoder(sample("k", ["circle"], buffer.getvalue(), ext="png"))
        assert image.shape == (3, 32, 32)


def test_target_sources_select_which_tags_are_targets():
    found = sample("k", ["circle", "red", "beach"], jpeg_bytes(),
                   sources={"circle": ["parsed"], "red": ["generated"], "beach": ["parsed", "generated"],
                            "night sky": ["dropped-by-clip"]})
    assert _decoder()(found)[1].tolist() == [1.0, 1.0, 1.0, 0.0]  # no sources: the final tags
    assert _decoder(sources=("parsed",))(found)[1].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert _decoder(sources=("generated",))(found)[1].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert _decoder(sources=("parsed", "generated"))(found)[1].tolist() == [1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("broken", [
    {"jpg": b"definitely not a jpeg"},
    {"jpg": jpeg_bytes((64, 64))[:200]},  # truncated
    {"jpg": jpeg_bytes(), "json": b'{"tags": ["circle"'},  # unparsable JSON
    {"jpg": jpeg_bytes(), "json": None},  # no JSON
], ids=["garbage", "truncated", "bad-json", "no-json"])
def test_a_sample_that_cannot_be_used_gives_none(broken):
    found = sample("k", ["circle"], jpeg_bytes())
    found.update(broken)
    if found.get("json") is None:
        del found["json"]
    assert _decoder()(found) is None


def test_a_sample_without_an_image_gives_none():
    assert _decoder()(sample("k", ["circle"], image=None)) is None


# ---- collate and the loader -----------------------------------------------------------------

def test_collate_stacks_the_usable_samples_and_counts_the_rest():
    decoder = _decoder()
    items = [decoder(sample("a", ["red"], jpeg_bytes())), None, decoder(sample("b", ["circle"], jpeg_bytes()))]
    batch = collate(items)
    assert isinstance(batch, Batch)
    assert batch.images.shape == (2, 3, 32, 32) and batch.targets.shape == (2, 4)
    assert batch.keys == ["a", "b"] and batch.skipped == 1
    empty = collate([None, None])
    assert empty.keys == [] and empty.skipped == 2


def _shard_with_a_corrupt_sample(folder):
    members = {}
    for index, tags in enumerate([["red"], ["circle"], ["beach"], ["red", "night sky"]]):
        members[f"{index:03d}.jpg"] = jpeg_bytes()
        members[f"{index:03d}.json"] = shard_json(tags)
    members["001.jpg"] = b"\xff\xd8 not really a jpeg"
    return write_tar(folder / "00000.tar", members)


def test_the_loader_skips_a_corrupt_sample_and_keeps_going(tmp_path):
    shard = _shard_with_a_corrupt_sample(tmp_path)
    batches = list(iterate_batches(make_loader([str(shard)], _decoder(), 2, "all", 0.0)))
    assert [key for batch in batches for key in batch.keys] == ["000", "002", "003"]
    targets = torch.cat([batch.targets for batch in batches])
    assert targets.tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]]


def test_the_loader_counts_a_corrupt_sample(tmp_path):
    shard = _shard_with_a_corrupt_sample(tmp_path)
    batches = list(iterate_batches(make_loader([str(shard)], _decoder(), 2, "all", 0.0)))
    assert sum(batch.skipped for batch in batches) == 1


def test_the_loader_gives_only_the_requested_split(tmp_path):
    keys = [f"{i:04d}" for i in range(40)]
    members = {}
    for key in keys:
        members[f"{key}.jpg"] = jpeg_bytes((8, 8))
        members[f"{key}.json"] = shard_json(["red"])
    shard = str(write_tar(tmp_path / "00000.tar", members))
    held = [key for b in iterate_batches(make_loader([shard], _decoder(), 8, "holdout", 0.3)) for key in b.keys]
    trained = [key for b in iterate_batches(make_loader([shard], _decoder(), 8, "train", 0.3, shuffle_seed=3))
               for key in b.keys]
    assert held == [key for key in keys if in_split(key, "holdout", 0.3)]
    assert sorted(trained) == [key for key in keys if in_split(key, "train", 0.3)]


# ---- shard_paths ---------------------------------------------------------------------------

def test_an_empty_folder_has_no_shards(tmp_path):
    with pytest.raises(ShardError, match=f"no .tar shards at {tmp_path}"):
        shard_paths(tmp_path)
    with pytest.raises(ShardError, match="no .tar shards"):
        shard_paths(tmp_path / "absent")
    with pytest.raises(ShardError, match="no .tar shards"):
        shard_paths(str(tmp_path / "*.tar"))


def test_shards_are_found_in_an_output_folder_a_shards_folder_a_glob_or_a_file(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    for name in ["00001.tar", "00000.tar"]:
        write_tar(shards / name, {"a.json": shard_json(["red"])})
    expected = [str(shards / "00000.tar"), str(shards / "00001.tar")]
    assert shard_paths(tmp_path) == expected
    assert shard_paths(shards) == expected
    assert shard_paths(str(shards / "*.tar")) == expected
    assert shard_paths(shards / "00001.tar") == [str(shards / "00001.tar")]
