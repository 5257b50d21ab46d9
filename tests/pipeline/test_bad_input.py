"""Bad input never stops a run: each bad record becomes a reject with a clear reason, nothing is lost."""

from __future__ import annotations

import datetime
import decimal
import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from helpers import add_member, jpeg_bytes, png_bytes, read_jsonl, write_manifest
from tagmill.engine.text import first_invalid
from tagmill.pipeline.job import run
from tagmill.pipeline.sources import row_groups_holding

VOCAB = ["dog", "cat", "red"]


def exif_rotated_jpeg() -> bytes:
    image = Image.new("RGB", (20, 10), (10, 200, 10))
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def palette_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8), 3).save(buffer, format="PNG", transparency=3)
    return buffer.getvalue()


def sixteen_bit_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("I;16", (8, 8), 40000).save(buffer, format="PNG")
    return buffer.getvalue()


IMAGES = {
    "good.jpg": jpeg_bytes(),
    "cmyk.jpg": jpeg_bytes(mode="CMYK", color=(0, 50, 100, 0)),
    "alpha.png": png_bytes(),
    "palette.png": palette_png(),
    "sixteen.png": sixteen_bit_png(),
    "rotated.jpg": exif_rotated_jpeg(),
    "truncated.jpg": jpeg_bytes(size=(64, 64))[:300],
    "zero.jpg": b"",
    "text.jpg": b"this is not an image at all",
    "huge.png": png_bytes(size=(300, 300), mode="RGB", color=(1, 2, 3)),
}

# (manifest line, expected reject reason or None for kept)
CASES = [
    ({"id": "good", "image": "good.jpg", "caption": "a red dog"}, None),
    ({"id": "cmyk", "image": "cmyk.jpg", "caption": "a cat"}, None),
    ({"id": "alpha", "image": "alpha.png", "caption": "a cat"}, None),
    ({"id": "palette", "image": "palette.png", "caption": "a cat"}, None),
    ({"id": "sixteen", "image": "sixteen.png", "caption": "a cat"}, None),
    ({"id": "rotated", "image": "rotated.jpg", "caption": "a cat"}, None),
    ({"id": "no-tags", "image": "good.jpg", "caption": "nothing of the vocabulary here"}, None),
    ({"id": "many", "image": "good.jpg", "captions": ["a dog", "a cat"]}, None),
    ({"id": "truncated", "image": "truncated.jpg", "caption": "a dog"}, "image_corrupt"),
    ({"id": "zero", "image": "zero.jpg", "caption": "a dog"}, "image_empty"),
    ({"id": "text", "image": "text.jpg", "caption": "a dog"}, "not_an_image"),
    ({"id": "huge", "image": "huge.png", "caption": "a dog"}, "image_too_large"),
    ({"id": "missing", "image": "nowhere.jpg", "caption": "a dog"}, "image_missing"),
    ({"id": "url", "image": "http://example.com/a.jpg", "caption": "a dog"}, "image_missing"),
    ({"id": "empty-caption", "image": "good.jpg", "caption": "   "}, "caption_empty"),
    ({"id": "no-caption", "image": "good.jpg"}, "caption_missing"),
    ({"id": "null-caption", "image": "good.jpg", "caption": None}, "caption_missing"),
    ({"id": "number-caption", "image": "good.jpg", "caption": 42}, "caption_not_string"),
    ({"id": "long-caption", "image": "good.jpg", "caption": "dog " * 100}, "caption_too_long"),
    ({"id": "good", "image": "good.jpg", "caption": "a second good"}, "id_duplicate"),
    ({"id": "../escape", "image": "good.jpg", "caption": "a dog"}, "id_unsafe"),
    ({"id": "/abs", "image": "good.jpg", "caption": "a dog"}, "id_unsafe"),
    ({"image": "good.jpg", "caption": "a dog"}, "id_missing"),
    (b"{not json", "manifest_line_invalid"),
    (b"[1, 2, 3]", "manifest_line_invalid"),
    (b'{"id": "latin1", "image": "good.jpg", "caption": "caf\xe9"}', "manifest_line_invalid"),
    # text that is not valid Unicode: lone surrogates, written by json.dumps as \u escapes
    ({"id": "surrogate-caption", "image": "good.jpg", "caption": "a dog \udc80 on a beach"}, "caption_not_utf8"),
    ({"id": "surrogate-in-list", "image": "good.jpg", "captions": ["a dog", "a \ud83d cat"]}, "caption_not_utf8"),
    ({"id": "surrogate-id-\udcff", "image": "good.jpg", "caption": "a dog"}, "text_not_utf8"),
    ({"id": "surrogate-meta", "image": "good.jpg", "caption": "a dog", "url": "http://x/\udc80"}, "text_not_utf8"),
    ({"id": "surrogate-key", "image": "good.jpg", "caption": "a dog", "exif": {"\udfff": 1}}, "text_not_utf8"),
    ({"id": "surrogate-image", "image": "good\udc80.jpg", "caption": "a dog"}, "text_not_utf8"),
    ({"id": "nul-image", "image": "good.jpg\x00", "caption": "a dog"}, "image_missing"),
    # valid Unicode however odd: control characters, line separators, an escaped surrogate pair
    ({"id": "controls", "image": "good.jpg", "caption": "a red\x07 dog\u2028", "note": "\x1b[31m\x85"}, None),
    ({"id": "emoji", "image": "good.jpg", "caption": "a cat \U0001f600"}, None),
]


@pytest.fixture(scope="module")
def manifest_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    for name, data in IMAGES.items():
        (root / name).write_bytes(data)
    (root / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    write_manifest(root / "manifest.jsonl", [line for line, _ in CASES])
    out = root / "out"
    run(["--input", str(root / "manifest.jsonl"), "--output", str(out), "--set", "input.max_image_pixels=20000",
         "--set", "input.max_caption_chars=200", "--set", "input.samples_per_shard=7"])
    return out


def test_every_bad_record_is_rejected_with_its_reason(manifest_run):
    rejects = read_jsonl(manifest_run / "rejects.jsonl")
    expected = [(number, reason) for number, (_, reason) in enumerate(CASES, start=1) if reason]
    got = [(int(r["source"].rsplit(":", 1)[1]), r["reason"]) for r in rejects]
    assert got == expected
    assert all(r["message"] for r in rejects)


def test_rejects_quote_invalid_text_as_visible_escapes(manifest_run):
    text = (manifest_run / "rejects.jsonl").read_bytes().decode("utf-8")  # strict, though it quotes bad input
    rejects = [json.loads(line) for line in text.split("\n") if line]
    messages = "\n".join(r["message"] for r in rejects)
    assert "a caption holds '\\udc80' at character 6, which is not valid Unicode" in messages
    assert "input.repair_text: true replaces it with U+FFFD" in messages
    assert all(first_invalid(r["message"] + r["id"] + r["source"]) is None for r in rejects)


def test_odd_but_valid_text_is_written_as_it_came(manifest_run):
    rows = {row["id"]: row for p in sorted((manifest_run / "shards").glob("*.parquet"))
            for row in pq.read_table(p).to_pylist()}
    assert rows["controls"]["captions"] == ["a red\x07 dog"]  # stripped of the trailing line separator
    assert json.loads(rows["controls"]["meta_json"]) == {"note": "\x1b[31m\x85"}
    assert rows["emoji"]["captions"] == ["a cat \U0001f600"] and rows["emoji"]["tags"] == ["cat"]


def test_unusual_valid_images_and_tagless_captions_are_kept(manifest_run):
    rows = [row for p in sorted((manifest_run / "shards").glob("*.parquet")) for row in pq.read_table(p).to_pylist()]
    kept = {row["id"]: row for row in rows}
    assert list(kept) == [line["id"] for line, reason in CASES if reason is None]
    assert kept["no-tags"]["tags"] == []
    assert kept["good"]["tags"] == ["dog", "red"] and kept["many"]["tags"] == ["cat", "dog"]
    assert (kept["rotated"]["width"], kept["rotated"]["height"]) == (10, 20)
    assert kept["cmyk"]["image_format"] == "JPEG" and kept["palette"]["image_ext"] == "png"


def test_images_are_written_as_they_came(manifest_run):
    with tarfile.open(manifest_run / "shards" / "00000.tar") as tar:
        assert tar.extractfile("cmyk.jpg").read() == IMAGES["cmyk.jpg"]
        assert tar.extractfile("palette.png").read() == IMAGES["palette.png"]


def test_counts_add_up(manifest_run):
    report = json.loads((manifest_run / "run.json").read_text())
    counts = report["counts"]
    assert counts["input"] == len(CASES) == counts["written"] + counts["rejected"]
    assert counts["rejected_by_reason"]["id_unsafe"] == 2
    assert sum(counts["rejected_by_reason"].values()) == counts["rejected"]


def test_nothing_is_written_outside_the_output(manifest_run):
    outside = [p for p in manifest_run.parent.iterdir() if p.name not in {*IMAGES, "tags.txt", "manifest.jsonl", "out"}]
    assert outside == []


def test_bad_tar_members_become_rejects(tmp_path):
    shards = tmp_path / "tars"
    shards.mkdir()
    with tarfile.open(shards / "00000.tar", "w") as tar:
        add_member(tar, "0001.jpg", jpeg_bytes())
        add_member(tar, "0001.txt", b"a red dog")
        add_member(tar, "../evil.jpg", jpeg_bytes())
        add_member(tar, "/abs.jpg", jpeg_bytes())
        add_member(tar, "0002.txt", b"caf\xe9 latin-1")
        add_member(tar, "0002.jpg", jpeg_bytes())
        add_member(tar, "0003.txt", b"a cat without a picture")
        add_member(tar, "0004.jpg", b"", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add_member(tar, "0005.jpg", jpeg_bytes())
        add_member(tar, "0005.json", json.dumps({"caption": "a cat from the json"}).encode())
    (shards / "00001.tar").write_bytes(b"not a tar file at all" * 10)
    (shards / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    out = tmp_path / "out"
    report = run(["--input", str(shards), "--output", str(out)])
    reasons = {r["id"]: r["reason"] for r in read_jsonl(out / "rejects.jsonl")}
    assert reasons == {"../evil": "path_unsafe", "/abs": "path_unsafe", "0002": "caption_not_utf8",
                       "0003": "image_missing", "0004": "member_unexpected", "00001.tar": "tar_corrupt"}
    kept = pq.read_table(out / "shards" / "00000.parquet").to_pylist()
    assert [(r["id"], r["tags"]) for r in kept] == [("0001", ["dog", "red"]), ("0005", ["cat"])]
    assert report["counts"]["input"] == 8 and report["conservation"]["ok"]
    assert not (tmp_path / "evil.jpg").exists() and not Path("/abs.jpg").exists()


def test_parquet_manifest_is_read_like_jsonl(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    table = pa.Table.from_pylist([{"id": "a", "image": "a.jpg", "caption": "two dogs"},
                                  {"id": "b", "image": "b.jpg", "caption": "a cat"}])
    pq.write_table(table, tmp_path / "manifest.parquet")
    report = run(["--input", str(tmp_path / "manifest.parquet"), "--output", str(tmp_path / "out")])
    assert report["counts"]["written"] == 1 and report["counts"]["rejected_by_reason"] == {"image_missing": 1}
    assert report["counts"]["tags"] == {"dog": 1}


def test_a_parquet_manifests_tasks_read_their_row_groups_only_and_lose_no_row(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    rows = [{"id": f"{n:02d}", "image": "a.jpg", "caption": "a dog" if n % 2 else "a cat"} for n in range(10)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "manifest.parquet", row_group_size=3)
    metadata = pq.ParquetFile(tmp_path / "manifest.parquet").metadata
    assert row_groups_holding(metadata, 4, 8) == ([1, 2], 3) and row_groups_holding(metadata, 8, 10) == ([2, 3], 6)
    report = run(["--input", str(tmp_path / "manifest.parquet"), "--output", str(tmp_path / "out"),
                  "--set", "input.samples_per_shard=4"])
    written = [(r["id"], r["tags"], r["source"]) for shard in sorted((tmp_path / "out" / "shards").glob("*.parquet"))
               for r in pq.read_table(shard).to_pylist()]
    assert written == [(f"{n:02d}", ["dog"] if n % 2 else ["cat"], f"manifest.parquet:{n + 1}") for n in range(10)]
    assert report["counts"]["written"] == 10 and report["conservation"]["ok"]


def test_metadata_json_cannot_hold_is_written_as_strict_json_text(tmp_path):
    (tmp_path / "a.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    table = pa.table({"id": ["a"], "image": ["a.jpg"], "caption": ["a dog"],
                      "taken": [datetime.datetime(2020, 1, 2, 3, 4, 5)], "day": [datetime.date(2020, 1, 2)],
                      "price": pa.array([decimal.Decimal("1.50")], pa.decimal128(5, 2)),
                      "lag": [datetime.timedelta(seconds=3)], "score": [float("nan")]})
    pq.write_table(table, tmp_path / "manifest.parquet")
    write_manifest(tmp_path / "manifest.jsonl", [b'{"id": "b", "image": "a.jpg", "caption": "a cat", "score": -Infinity}'])
    for manifest in ("manifest.parquet", "manifest.jsonl"):
        report = run(["--input", str(tmp_path / manifest), "--output", str(tmp_path / f"out-{manifest}")])
        assert report["counts"]["written"] == 1
    metas = [json.loads(row["meta_json"], parse_constant=_not_json)
             for out in tmp_path.glob("out-*") for row in pq.read_table(out / "shards" / "00000.parquet").to_pylist()]
    assert sorted(metas, key=len) == [{"score": "-Infinity"}, {"taken": "2020-01-02T03:04:05", "day": "2020-01-02",
                                                                "price": "1.50", "lag": "0:00:03", "score": "nan"}]


def _not_json(constant: str):
    raise AssertionError(f"{constant} is not JSON")


def test_an_empty_input_shard_is_written_empty(tmp_path):
    shards = tmp_path / "tars"
    shards.mkdir()
    with tarfile.open(shards / "00000.tar", "w"):
        pass
    (shards / "tags.txt").write_text("dog\n")
    report = run(["--input", str(shards), "--output", str(tmp_path / "out")])
    assert report["counts"]["input"] == 0 and (tmp_path / "out" / "shards" / "00000_stats.json").exists()
