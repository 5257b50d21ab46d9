"""Where files live: local paths, or URLs of any fsspec protocol (`s3://`, `gs://`, `memory://`, ...).

Every path a user gives may be a URL; everything tagmill reads or writes goes through here, so local
paths and object stores behave alike. S3 takes its endpoint and credentials from the standard AWS
settings (`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`, `AWS_PROFILE`, the environment), as botocore
reads them; s3fs and gcsfs come with the `s3` and `gcs` extras.

An object store has no rename. `write_atomic` writes a local file under a temporary name and renames
it when complete; an object it uploads in one piece once written, since an object appears whole when
its upload completes, or not at all. Either way a file that exists is complete, which is what resuming relies
on (a shard whose stats file exists is whole: the stats file is written last).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import threading
from typing import IO, Callable, Iterator

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

TMP_SUFFIX = ".tmp"
CACHE_FOLDER = "tagmill-cache"
VERSION_KEYS = ("ETag", "etag", "generation", "LastModified", "Last-Modified", "mtime", "created", "ino")


def is_url(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def _fs(path: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and its own path; an object store's listings are never cached, since other
    processes (the runner's workers) write there too."""
    if is_url(path):
        return url_to_fs(str(path), use_listings_cache=False)
    return url_to_fs(str(path))


def is_local(path: str | os.PathLike) -> bool:
    return isinstance(_fs(path)[0], LocalFileSystem)


def join(base: str | os.PathLike, *parts: str) -> str:
    """`base` with `parts` appended, as a URL stays a URL (with `..` resolved, as a path's would be)."""
    if is_url(base):
        scheme, _, path = posixpath.join(str(base).rstrip("/"), *parts).partition("://")
        return f"{scheme}://{posixpath.normpath(path)}"
    return os.path.join(str(base), *parts)


def name(path: str | os.PathLike) -> str:
    """The last part of a path or URL."""
    return posixpath.basename(str(path).rstrip("/")) if is_url(path) else os.path.basename(str(path))


def parent(path: str | os.PathLike) -> str:
    """The folder a path or URL is in."""
    return posixpath.dirname(str(path).rstrip("/")) if is_url(path) else os.path.dirname(os.path.abspath(path))


def exists(path: str | os.PathLike) -> bool:
    fs, inner = _fs(path)
    return fs.exists(inner)


def is_dir(path: str | os.PathLike) -> bool:
    fs, inner = _fs(path)
    return fs.isdir(inner)


def is_file(path: str | os.PathLike) -> bool:
    fs, inner = _fs(path)
    return fs.isfile(inner)


def glob(pattern: str | os.PathLike) -> list[str]:
    """The paths (URLs for a URL pattern) that match, sorted."""
    fs, inner = _fs(pattern)
    return sorted(_outer(fs, pattern, found) for found in fs.glob(inner))


def list_names(folder: str | os.PathLike) -> set[str]:
    """The names of the files in a folder (none when it does not exist), in one listing."""
    fs, inner = _fs(folder)
    try:
        return {posixpath.basename(entry.rstrip("/")) for entry in fs.ls(inner, detail=False)}
    except FileNotFoundError:
        return set()


def _outer(fs: fsspec.AbstractFileSystem, given: str | os.PathLike, inner: str) -> str:
    return fs.unstrip_protocol(inner) if is_url(given) else inner


def makedirs(path: str | os.PathLike) -> None:
    """The folder and its parents; object stores have no folders, so there it makes nothing."""
    fs, inner = _fs(path)
    fs.makedirs(inner, exist_ok=True)


def open_file(path: str | os.PathLike, mode: str = "rb") -> IO:
    fs, inner = _fs(path)
    return fs.open(inner, mode)


@contextlib.contextmanager
def open_tar(path: str | os.PathLike) -> Iterator[tarfile.TarFile]:
    """A tar for reading (compressed or not), its stream closed with it."""
    with open_file(path) as stream, tarfile.open(fileobj=stream, mode="r:*") as tar:
        yield tar


def read_bytes(path: str | os.PathLike) -> bytes:
    fs, inner = _fs(path)
    return fs.cat_file(inner)


def read_ranges(paths: list[str], starts: list[int], ends: list[int]) -> list[bytes | Exception]:
    """Byte ranges of files on one filesystem, fetched concurrently where it can (object stores); a range
    that cannot be read comes back as its exception."""
    if not paths:
        return []
    fs, _ = _fs(paths[0])
    return fs.cat_ranges([_fs(path)[1] for path in paths], starts, ends, on_error="return")


def read_text(path: str | os.PathLike) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    write_atomic(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_atomic(path: str | os.PathLike, write: Callable[[IO], object]) -> None:
    """`write(stream)` into `path` so that the file exists only when complete."""
    fs, inner = _fs(path)
    if not isinstance(fs, LocalFileSystem):
        buffer = io.BytesIO()  # uploaded once complete: a stream would upload what a failed write left
        write(buffer)
        fs.pipe_file(inner, buffer.getvalue())
        return
    tmp = f"{inner}.{os.getpid()}-{threading.get_ident()}{TMP_SUFFIX}"  # one per writer: processes may race
    try:
        with open(tmp, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())  # on disk before it has its name, so a file that exists is complete
        os.replace(tmp, inner)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def local_path(path: str | os.PathLike) -> str:
    """A local file's path as it is; a URL's file fetched once into a local cache, for libraries that
    open local files only (open_clip and timm checkpoints, which read the format from the name).

    The cache is `TMPDIR/tagmill-cache/<hash of the URL and the object's version>/<name>`, shared by
    the processes of a machine and fetched again when the object changes; a copy appears whole or
    not at all.
    """
    if not is_url(path):
        return str(path)
    fs, inner = _fs(path)
    key = hashlib.sha256(f"{path}\0{fs.ukey(inner)}".encode()).hexdigest()[:32]
    local = os.path.join(tempfile.gettempdir(), CACHE_FOLDER, key, name(path))
    if not os.path.isfile(local):
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open_file(path) as source:
            write_atomic(local, lambda target: shutil.copyfileobj(source, target))
    return local


def version(path: str | os.PathLike) -> str | None:
    """What tells whether a file has changed: its size with its ETag (object stores), generation (GCS)
    or modification time, and locally its inode and change time, which copying with its times kept
    does not keep; None when its filesystem reports none of these."""
    fs, inner = _fs(path)
    info = fs.info(inner)
    marks = [str(info[key]) for key in VERSION_KEYS if key in info]
    return json.dumps([info.get("size"), *marks]) if marks else None


def remove(path: str | os.PathLike) -> None:
    """The file, when it exists."""
    fs, inner = _fs(path)
    if fs.exists(inner):
        fs.rm_file(inner)
