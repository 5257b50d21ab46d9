"""One I/O layer for local paths and URLs, against a real S3 API (moto's server on loopback)."""

import pytest

from tagmill.engine import storage


@pytest.fixture(params=["local", "s3"])
def base(request, tmp_path):
    return str(tmp_path) if request.param == "local" else request.getfixturevalue("s3_bucket") + "/data"


def test_write_read_list_and_remove(base):
    storage.makedirs(storage.join(base, "shards"))
    path = storage.join(base, "shards", "00000_stats.json")
    storage.write_text(path, '{"ok": true}')
    storage.write_bytes(storage.join(base, "shards", "00000.tar"), b"tar")
    assert storage.read_text(path) == '{"ok": true}'
    assert storage.list_names(storage.join(base, "shards")) == {"00000_stats.json", "00000.tar"}
    assert storage.glob(storage.join(base, "shards", "*.tar")) == [storage.join(base, "shards", "00000.tar")]
    assert storage.is_file(path) and storage.is_dir(storage.join(base, "shards"))
    assert storage.name(path) == "00000_stats.json" and storage.parent(path).endswith("shards")
    storage.remove(path)
    assert not storage.exists(path) and storage.list_names(storage.join(base, "missing")) == set()


def test_a_failed_write_leaves_no_file(base):
    path = storage.join(base, "half.json")

    def fail(stream):
        stream.write(b"{")
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        storage.write_atomic(path, fail)
    assert not storage.exists(path)
    assert storage.glob(storage.join(base, "half.json*")) == []  # nor a partial one under another name


def test_a_url_joined_with_dot_dot_names_the_folder_above(s3_bucket):
    assert storage.join(f"{s3_bucket}/configs/rounds", "../engine.yaml") == f"{s3_bucket}/configs/engine.yaml"


def test_a_url_file_is_fetched_once_under_its_own_name_and_again_when_it_changes(base):
    path = storage.join(base, "weights", "model.safetensors")
    storage.makedirs(storage.parent(path))
    storage.write_bytes(path, b"first")
    local = storage.local_path(path)
    assert local.endswith("model.safetensors") and open(local, "rb").read() == b"first"
    assert storage.local_path(path) == local  # cached
    if storage.is_url(path):
        storage.write_bytes(path, b"second version")
        changed = storage.local_path(path)
        assert changed != local and open(changed, "rb").read() == b"second version"
    else:
        assert local == path  # a local file is used where it is


def test_byte_ranges_are_read_together_and_a_failed_one_comes_back_as_its_error(base):
    storage.write_bytes(storage.join(base, "a.bin"), b"0123456789")
    storage.write_bytes(storage.join(base, "b.bin"), b"abcdef")
    read = storage.read_ranges([storage.join(base, "a.bin"), storage.join(base, "b.bin"), storage.join(base, "c.bin")],
                               [2, 0, 0], [5, 6, 1])
    assert read[:2] == [b"234", b"abcdef"] and isinstance(read[2], Exception)


def test_a_files_version_holds_while_it_is_unchanged_and_changes_with_it(base):
    path = storage.join(base, "a.tar")
    storage.write_bytes(path, b"one")
    first = storage.version(path)
    assert storage.version(path) == first
    storage.write_bytes(path, b"two, longer")
    assert storage.version(path) != first
