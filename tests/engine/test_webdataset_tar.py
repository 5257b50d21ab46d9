"""Tars written with the standard library in webdataset's layout: webdataset's own bytes, and webdataset reads them."""

import io

import webdataset as wds

from tagmill.engine.webdataset_tar import write_tar

SAMPLES = [("a/0001", {"jpg": b"\xff\xd8jpeg", "json": b'{"tags": ["dog"]}', "txt": "a dog".encode()}),
           ("b-0002", {"png": b"\x89PNG" * 300, "json": b"{}"}),
           ("\u00e9t\u00e9", {"webp": b"", "json": b"[]"})]


def test_the_bytes_are_webdatasets_own():
    ours, theirs = io.BytesIO(), io.BytesIO()
    write_tar(ours, SAMPLES)
    with wds.TarWriter(theirs, encoder=False, mtime=0) as writer:
        for key, members in SAMPLES:
            writer.write({"__key__": key, **members})
    assert ours.getvalue() == theirs.getvalue()


def test_webdataset_reads_every_sample_back(tmp_path):
    path = tmp_path / "shard.tar"
    with open(path, "wb") as stream:
        write_tar(stream, SAMPLES)
    read = [{k: v for k, v in s.items() if not k.startswith("__")} | {"__key__": s["__key__"]}
            for s in wds.WebDataset(str(path), shardshuffle=False)]
    assert read == [{"__key__": key, **members} for key, members in SAMPLES]


def test_each_members_place_holds_its_bytes():
    stream = io.BytesIO()
    places = write_tar(stream, SAMPLES)
    written = stream.getvalue()
    assert [{ext: written[offset:offset + size] for ext, (offset, size) in sample.items()} for sample in places] == [
        members for _, members in SAMPLES]
