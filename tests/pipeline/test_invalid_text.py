"""Text that is not valid Unicode never stops a run: it becomes a reject with a clear reason, or is repaired.

Lone surrogates (JSON escapes such as `\\udc80`, common in web-scraped captions) and undecodable
bytes can sit in any input text: ids, captions, image paths, metadata, tar member names, Parquet
strings. Each case runs a real `tagmill run`; a property-based test builds manifests and tars from
arbitrary strings and checks that every run finishes, accounts for every record and writes only
valid UTF-8.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import add_member, jpeg_bytes, write_manifest
from tagmill.engine.config import load_config
from tagmill.engine.records import Record, Reject
from tagmill.engine.text import REPAIR_HINT, first_invalid
from tagmill.pipeline.cli import main
from tagmill.pipeline.job import run
from tagmill.pipeline.sinks import write_shard

VOCAB = ["dog", "cat", "red", "beach"]
ISSUE_LINE = b'{"id": "x", "image": "x.jpg", "caption": "a dog \\udc80 on a beach"}'
REASONS = {value for name, value in vars(Reject).items() if name.isupper()}
TEXT_FILES = (".json", ".jsonl", ".yaml", ".html", ".txt")


# ---- checks every run's output must pass ----------------------------------------------------------

def assert_valid_utf8_everywhere(out: Path) -> None:
    """Every text the run wrote decodes as strict UTF-8: files, Parquet strings, tar member names and JSON."""
    for path in sorted(out.rglob("*")):
        assert not path.name.endswith(".tmp"), path
        if path.suffix in TEXT_FILES:
            path.read_bytes().decode("utf-8")
        elif path.suffix == ".parquet":
            pq.read_table(path).validate(full=True)
        elif path.suffix == ".tar":
            assert_tar_is_utf8(path)


def assert_tar_is_utf8(path: Path) -> None:
    with tarfile.open(path, encoding="utf-8", errors="strict") as tar:
        for member in tar:  # names decode strictly, or reading raises
            if member.name.endswith(".json"):
                json.loads(tar.extractfile(member).read().decode("utf-8"))


def read_rejects(out: Path) -> list[dict]:
    """rejects.jsonl, split on newlines only (JSON text may hold other line separators, such as U+2028)."""
    text = (out / "rejects.jsonl").read_bytes().decode("utf-8")
    return [json.loads(line) for line in text.split("\n") if line]


def kept_rows(out: Path) -> list[dict]:
    return [row for path in sorted((out / "shards").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def assert_every_record_accounted_for(out: Path, report: dict, expected: int) -> None:
    """run.json conserves the counts, and rejects.jsonl and the shards hold exactly those records."""
    counts = json.loads((out / "run.json").read_text(encoding="utf-8"))["counts"]
    assert report["conservation"]["ok"]
    assert counts["input"] == expected == counts["written"] + counts["rejected"]
    assert sum(counts["rejected_by_reason"].values()) == counts["rejected"]
    rejects = read_rejects(out)
    assert len(rejects) == counts["rejected"] and len(kept_rows(out)) == counts["written"]
    assert all(r["reason"] in REASONS and r["message"] for r in rejects)
    assert all(first_invalid(r["id"] + r["source"] + r["message"]) is None for r in rejects)


def run_into(out: Path, source: Path, *overrides: str) -> dict:
    """`tagmill run` from `source` into `out` with `key=value` config overrides."""
    args = ["--input", str(source), "--output", str(out)]
    for override in overrides:
        args += ["--set", override]
    return run(args)


def repair_setting(repair: bool) -> str:
    return f"input.repair_text={'true' if repair else 'false'}"


# ---- the issue -----------------------------------------------------------------------------------

def test_the_issue_line_is_a_reject_not_a_crash(tmp_path):
    (tmp_path / "x.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    write_manifest(tmp_path / "manifest.jsonl", [ISSUE_LINE])
    out = tmp_path / "out"
    report = run_into(out, tmp_path / "manifest.jsonl")
    assert_every_record_accounted_for(out, report, expected=1)
    (reject,) = read_rejects(out)
    assert reject["reason"] == "caption_not_utf8"
    assert reject["message"].startswith("a caption holds '\\udc80' at character 6, which is not valid Unicode")
    assert_valid_utf8_everywhere(out)


def test_mining_skips_the_issue_caption(tmp_path):
    (tmp_path / "x.jpg").write_bytes(jpeg_bytes())
    good = [{"id": f"good{i}", "image": "x.jpg", "caption": "a red dog on a beach"} for i in range(3)]
    write_manifest(tmp_path / "manifest.jsonl", [ISSUE_LINE, *good])
    out = tmp_path / "out"
    report = run_into(out, tmp_path / "manifest.jsonl", "parse.mine.min_count=1")
    assert {"dog", "beach"} <= set(json.loads((out / "vocab.json").read_text(encoding="utf-8"))["tags"])
    assert report["counts"]["written"] == 3 and report["counts"]["rejected_by_reason"] == {"caption_not_utf8": 1}
    assert_every_record_accounted_for(out, report, expected=4)
    assert_valid_utf8_everywhere(out)


def test_mining_reads_the_repaired_caption(tmp_path):
    (tmp_path / "x.jpg").write_bytes(jpeg_bytes())
    write_manifest(tmp_path / "manifest.jsonl", [ISSUE_LINE])
    out = tmp_path / "out"
    report = run_into(out, tmp_path / "manifest.jsonl", "parse.mine.min_count=1", "input.repair_text=true")
    (row,) = kept_rows(out)
    assert row["captions"] == ["a dog \ufffd on a beach"] and {"dog", "beach"} <= set(row["tags"])
    assert report["counts"]["rejected"] == 0
    assert_valid_utf8_everywhere(out)


def test_tagmill_vocab_skips_the_issue_caption(tmp_path):
    good = {"caption": "a red dog on a beach"}
    write_manifest(tmp_path / "captions.jsonl", [ISSUE_LINE, good, good])
    assert main(["vocab", "--input", str(tmp_path / "captions.jsonl"), "--out", str(tmp_path / "vocab.json"),
                 "--min-count", "1"]) == 0
    assert {"dog", "beach"} <= set(json.loads((tmp_path / "vocab.json").read_bytes().decode("utf-8"))["tags"])


def test_repair_text_is_part_of_the_output_fingerprint():
    assert load_config(None, ["input.repair_text=true"]).output_fingerprint() != \
        load_config(None).output_fingerprint()


def test_the_writer_rejects_a_kept_record_it_cannot_write(tmp_path):
    """Text a later step adds is never checked by the readers; the shard writer still never fails on it."""
    def record(index: int, generated: str) -> Record:
        return Record(id=f"s{index}", source="test", shard=0, index=index, image=jpeg_bytes(size=(4, 4)),
                      image_ext="jpg", captions=["a dog"], generated_caption=generated)

    stats = write_shard(tmp_path, 0, [record(0, "a dog \udc80"), record(1, "a dog")], "fingerprint")
    assert (stats["written"], stats["rejected_by_reason"]) == (1, {"text_not_utf8": 1})
    (reject,) = [json.loads(line) for line in (tmp_path / "00000_rejects.jsonl").read_bytes().decode().splitlines()]
    assert reject["id"] == "s0" and "generated_caption holds '\\udc80'" in reject["message"]
    assert_valid_utf8_everywhere(tmp_path)


# ---- tars and Parquet ----------------------------------------------------------------------------

def write_tar_with_bad_text(folder: Path) -> Path:
    folder.mkdir()
    (folder / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    samples = {
        "ok": {"txt": b"a red dog"},
        b"caf\xe9".decode("utf-8", "surrogateescape"): {"txt": b"a dog"},  # a member name that is not UTF-8
        "meta-escape": {"txt": b"a cat", "json": b'{"url": "http://x/\\udc80"}'},
        "meta-bytes": {"txt": b"a cat", "json": b'{"url": "caf\xe9"}'},
        "json-caption": {"json": b'{"caption": "a red \\ud800 cat"}'},
        "txt-surrogate": {"txt": "a dog \udc80".encode("utf-8", "surrogatepass")},
    }
    with tarfile.open(folder / "00000.tar", "w") as tar:
        for key, members in samples.items():
            add_member(tar, f"{key}.jpg", jpeg_bytes(size=(4, 4)))
            for ext, data in members.items():
                add_member(tar, f"{key}.{ext}", data)
    return folder


@pytest.mark.parametrize("repair, rejected", [
    (False, {"caf\\udce9": "text_not_utf8", "meta-escape": "text_not_utf8", "meta-bytes": "text_not_utf8",
             "json-caption": "caption_not_utf8", "txt-surrogate": "caption_not_utf8"}),
    (True, {"caf\\udce9": "text_not_utf8"}),  # ids are never repaired: a repaired id names no file
])
def test_tar_text_that_is_not_utf8(tmp_path, repair, rejected):
    shards = write_tar_with_bad_text(tmp_path / "tars")
    out = tmp_path / "out"
    report = run_into(out, shards, repair_setting(repair))
    assert {r["id"]: r["reason"] for r in read_rejects(out)} == rejected
    assert_every_record_accounted_for(out, report, expected=6)
    assert_valid_utf8_everywhere(out)
    if repair:
        rows = {row["id"]: row for row in kept_rows(out)}
        assert rows["json-caption"]["captions"] == ["a red \ufffd cat"]
        assert rows["txt-surrogate"]["captions"] == ["a dog \ufffd\ufffd\ufffd"]  # one per undecodable byte
        assert json.loads(rows["meta-bytes"]["meta_json"]) == {"url": "caf\ufffd"}


def write_parquet_with_bad_text(folder: Path) -> Path:
    """A manifest whose caption column holds bytes that are not UTF-8, as other writers than Arrow's may leave."""
    folder.mkdir()
    (folder / "x.jpg").write_bytes(jpeg_bytes())
    (folder / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    captions = pa.array([b"a dog", b"a caf\xe9 dog", b"a cat"], type=pa.binary()).view(pa.string())
    notes = pa.array([b"fine", b"fine", b"\xff"], type=pa.binary())  # metadata is written as JSON: text
    table = pa.table({"id": ["a", "b", "c"], "image": ["x.jpg"] * 3, "caption": captions, "note": notes})
    pq.write_table(table, folder / "manifest.parquet")
    return folder / "manifest.parquet"


@pytest.mark.parametrize("repair, rejected", [
    (False, {"caption_not_utf8": 1, "text_not_utf8": 1}),
    (True, {}),
])
def test_parquet_strings_that_are_not_utf8(tmp_path, repair, rejected):
    manifest = write_parquet_with_bad_text(tmp_path / "in")
    out = tmp_path / "out"
    report = run_into(out, manifest, repair_setting(repair))
    assert report["counts"]["rejected_by_reason"] == rejected
    assert_every_record_accounted_for(out, report, expected=3)
    assert_valid_utf8_everywhere(out)
    rows = {row["id"]: row for row in kept_rows(out)}
    assert json.loads(rows["a"]["meta_json"]) == {"note": "fine"}
    if repair:
        assert rows["b"]["captions"] == ["a caf\ufffd dog"] and json.loads(rows["c"]["meta_json"]) == {"note": "\ufffd"}


# ---- any text at all -----------------------------------------------------------------------------

ODD = ["\udc80", "\udcff", "\ud800", "\udfff", "\ud83d", "\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff",
       "\ufffd", "\n", "\t", " ", ".", "/", "..", "\\", '"', "dog", "red", "cat"]
PIECES = st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr), st.sampled_from(ODD))
TEXT = st.lists(PIECES, max_size=6).map("".join)
WORDS = st.lists(st.one_of(st.sampled_from(VOCAB), PIECES), min_size=1, max_size=6).map(" ".join)
SAFE_IDS = st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True)
# usable values are drawn about as often as odd ones, so that later fields of a record get checked too
IDS = st.one_of(SAFE_IDS, SAFE_IDS, SAFE_IDS, TEXT, st.integers(0, 9), st.none())
CAPTIONS = st.one_of(WORDS, WORDS, TEXT, st.lists(WORDS, max_size=3), st.none(), st.integers())
META = st.dictionaries(TEXT, st.one_of(TEXT, st.integers(), st.lists(TEXT, max_size=2)), max_size=3)
IMAGES = st.one_of(st.just("x.jpg"), st.just("x.jpg"), TEXT)


@st.composite
def manifest_lines(draw) -> bytes:
    """One JSONL line: fields from arbitrary strings, surrogates \\u-escaped or written as the bytes they
    would be (not UTF-8), or a few arbitrary bytes."""
    fields = {**draw(META), "id": draw(IDS), "image": draw(IMAGES), "caption": draw(CAPTIONS)}
    encoding = draw(st.sampled_from(["escaped", "raw", "bytes"]))
    if encoding == "bytes":
        return draw(st.binary(max_size=12)).replace(b"\n", b"")
    if encoding == "escaped":
        return json.dumps(fields).encode()
    return json.dumps(fields, ensure_ascii=False).encode("utf-8", "surrogatepass")


def encoded(text: str) -> bytes:
    """Text as bytes, each lone surrogate written as the three bytes UTF-8 would give it (so: not UTF-8)."""
    return text.encode("utf-8", "surrogatepass")


KEY_BYTES = st.one_of(SAFE_IDS.map(str.encode), SAFE_IDS.map(str.encode), TEXT.map(encoded),
                      st.binary(min_size=1, max_size=6)).map(lambda key: key.translate(None, b"./\x00")).filter(bool)
MEMBER_TEXT = st.one_of(st.none(), WORDS.map(encoded), TEXT.map(encoded), st.binary(max_size=8))
MEMBER_JSON = st.one_of(st.none(), st.binary(max_size=8),
                        st.builds(lambda meta, caption: json.dumps({**meta, "caption": caption}).encode(),
                                  META, CAPTIONS),
                        META.map(lambda meta: encoded(json.dumps(meta, ensure_ascii=False))))


@st.composite
def tar_samples(draw) -> list[tuple[str, bytes | None, bytes | None]]:
    """Samples as (key, .txt bytes, .json bytes): keys from arbitrary bytes (as tarfile reads them back,
    undecodable bytes as surrogates), distinct, so each is one record."""
    keys = draw(st.lists(KEY_BYTES, min_size=1, max_size=5, unique=True))
    return [(key.decode("utf-8", "surrogateescape"), draw(MEMBER_TEXT), draw(MEMBER_JSON)) for key in keys]


def write_tar(folder: Path, samples: list[tuple[str, bytes | None, bytes | None]]) -> None:
    folder.mkdir()
    (folder / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    with tarfile.open(folder / "00000.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        for key, text, meta in samples:
            add_member(tar, f"{key}.jpg", jpeg_bytes(size=(4, 4)))
            for ext, data in (("txt", text), ("json", meta)):
                if data is not None:
                    add_member(tar, f"{key}.{ext}", data)


def check_manifest_run(folder: Path, lines: list[bytes], repair: bool) -> None:
    (folder / "x.jpg").write_bytes(jpeg_bytes(size=(4, 4)))
    (folder / "tags.txt").write_text("\n".join(VOCAB) + "\n")
    write_manifest(folder / "manifest.jsonl", lines)
    out = folder / "out"
    report = run_into(out, folder / "manifest.jsonl", repair_setting(repair), "input.samples_per_shard=3")
    assert_every_record_accounted_for(out, report, expected=len(lines))
    sources = [r["source"] for r in read_rejects(out)] + [row["source"] for row in kept_rows(out)]
    assert sorted(int(s.rsplit(":", 1)[1]) for s in sources) == list(range(1, len(lines) + 1))
    assert_valid_utf8_everywhere(out)
    if repair:
        assert not any(REPAIR_HINT in r["message"] for r in read_rejects(out))


def check_tar_run(folder: Path, samples: list[tuple[str, bytes | None, bytes | None]], repair: bool) -> None:
    write_tar(folder / "tars", samples)
    out = folder / "out"
    report = run_into(out, folder / "tars", repair_setting(repair))
    assert_every_record_accounted_for(out, report, expected=len(samples))
    assert {row["id"] for row in kept_rows(out)} <= {key for key, _, _ in samples}
    assert_valid_utf8_everywhere(out)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=st.lists(manifest_lines(), min_size=1, max_size=6), samples=tar_samples(), repair=st.booleans())
def test_any_text_gives_a_finished_run_with_every_record_accounted_for(lines, samples, repair):
    with tempfile.TemporaryDirectory() as manifest_folder, tempfile.TemporaryDirectory() as tar_folder:
        check_manifest_run(Path(manifest_folder), lines, repair)
        check_tar_run(Path(tar_folder), samples, repair)
