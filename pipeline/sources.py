"""Reading inputs: webdataset tars as img2dataset writes them, and JSONL or Parquet manifests.

`plan_input` cuts the input into shard tasks (one output shard each), from listings and manifest
line counts alone. `read_ids` reads a task's ids for the input's index (`pipeline/index.py`), which
marks each task's duplicates (`ShardTask.duplicates`). `read_shard` turns one task into records;
anything unusable becomes a record with a reject reason, never an exception. Text that is not valid
UTF-8 (undecodable bytes, lone surrogates from JSON escapes) is one such thing wherever it sits: an
id, a caption, an image path, metadata, a tar member name. With `repair_text`, captions and metadata
are repaired to U+FFFD instead; ids and paths never are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import decimal
import json
import math
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from tagmill.engine import storage
from tagmill.engine.captions import check_captions, check_metadata, decode_caption, decode_text
from tagmill.engine.images import EXTENSIONS
from tagmill.engine.records import Record, RecordError, Reject, check_id, check_name_text
from tagmill.engine.text import quoted

MANIFEST_SUFFIXES = (".jsonl", ".json", ".parquet")
CAPTION_KEYS = ("captions", "caption")


class InputError(ValueError):
    """An input path that cannot be read at all."""


@dataclass(frozen=True)
class ShardTask:
    """One output shard's worth of input: a tar, or a range of manifest lines or rows."""

    index: int
    kind: str  # "tar", "jsonl" or "parquet"
    path: str
    start: int = 0
    stop: int = 0
    offset: int = 0  # byte offset of line `start` in a JSONL manifest
    duplicates: tuple[int, ...] = field(default=())  # positions whose id appeared earlier (from the index)
    source: str = ""  # the path under the input's folder: records name it, the same wherever the input is stored

    @property
    def name(self) -> str:
        return f"{self.index:05d}"


# ---- planning ------------------------------------------------------------------------------

def plan_input(path: str, samples_per_shard: int) -> list[ShardTask]:
    """The shard tasks of an input (tar folder, tar glob, one tar, or a manifest); no tar is opened."""
    root = _input_root(path)
    return [dataclasses.replace(task, source=_under(task.path, root)) for task in _tasks(path, samples_per_shard)]


def _input_root(path: str) -> str:
    """The folder an input's paths are named under: the folder given, a glob's fixed part, a file's folder."""
    wildcard = min((path.index(ch) for ch in "*?[" if ch in path), default=None)
    if wildcard is not None:
        root = path[:wildcard].rpartition("/")[0]
    else:
        root = path if storage.is_dir(path) else storage.parent(path)
    return root if storage.is_url(root) else os.path.abspath(root or ".")


def _under(path: str, root: str) -> str:
    """`path` relative to `root` when it lies under it (as found: absolute, or a URL), else as it is."""
    found = path if storage.is_url(path) else os.path.abspath(path)
    prefix = root.rstrip("/") + "/"
    return found[len(prefix):] if found.startswith(prefix) else path


def _tasks(path: str, samples_per_shard: int) -> list[ShardTask]:
    if any(ch in path for ch in "*?["):
        tars = [p for p in storage.glob(path) if p.endswith(".tar")]
        if not tars:
            raise InputError(f"no .tar files match {path}")
        return _tar_tasks(tars)
    if storage.is_dir(path):
        tars = storage.glob(storage.join(path, "*.tar"))
        if not tars:
            raise InputError(f"{path} holds no .tar shards")
        return _tar_tasks(tars)
    if not storage.is_file(path):
        raise InputError(f"input {path} does not exist")
    suffix = posixpath.splitext(storage.name(path))[1]
    if suffix == ".tar":
        return _tar_tasks([path])
    if suffix in (".jsonl", ".json"):
        return _jsonl_tasks(path, samples_per_shard)
    if suffix == ".parquet":
        return _chunk(path, "parquet", _count_rows(path), samples_per_shard)
    raise InputError(f"input {path}: expected a folder of .tar shards, a .tar, or a .jsonl/.parquet manifest")


def _tar_tasks(paths: list[str]) -> list[ShardTask]:
    """One task per tar; its records are counted by the input's index."""
    return [ShardTask(i, "tar", p) for i, p in enumerate(paths)]


def _chunk(path: str, kind: str, total: int, per_shard: int, offsets: list[int] | None = None) -> list[ShardTask]:
    return [ShardTask(i, kind, path, start, min(start + per_shard, total), offset=offsets[i] if offsets else 0)
            for i, start in enumerate(range(0, total, per_shard))]


def _jsonl_tasks(path: str, per_shard: int) -> list[ShardTask]:
    """Lines cut into shards, with the byte offset where each shard starts so readers can seek."""
    offsets, total, position = [], 0, 0
    with storage.open_file(path) as f:
        for line in f:
            if total % per_shard == 0:
                offsets.append(position)
            position += len(line)
            total += 1
    return _chunk(path, "jsonl", total, per_shard, offsets)


def _count_rows(path: str) -> int:
    try:
        with storage.open_file(path) as f:
            return pq.ParquetFile(f).metadata.num_rows
    except Exception as err:  # pyarrow raises several types for a bad file
        raise InputError(f"cannot read Parquet manifest {path}: {err}") from None


# ---- each task's ids, for the input's index (`pipeline/index.py`) ------------------------------

def read_ids(task: ShardTask) -> tuple[tuple[str | None, ...], bool]:
    """The id of each record the task yields, in order, and whether the input was read to its end. An id
    is None where the record's is missing or one the reader rejects (unsafe, not valid UTF-8), since such
    a record is never kept and so takes no id from a later one."""
    if task.kind == "tar":
        groups = _tar_groups(task.path)
        return tuple(None if g.error else _usable_id(g.key) for g in groups), not any(g.error for g in groups)
    # read as a repairing run reads them, so no two records kept with one id can go unmarked
    rows = _manifest_rows(task, repair=True)
    return tuple(_usable_id(fields.get("id") if isinstance(fields, dict) else None) for _, fields in rows), True


def _usable_id(value: object) -> str | None:
    try:
        return check_id(value)
    except RecordError:
        return None


# ---- reading -------------------------------------------------------------------------------

def read_shard(task: ShardTask, max_caption_chars: int, repair_text: bool = False) -> Iterator[Record]:
    """Every record of one task, in input order; duplicates and unreadable ones come as rejects.

    `repair_text` replaces text that is not valid UTF-8 in captions and metadata with U+FFFD
    instead of rejecting the record.
    """
    reader = _read_tar if task.kind == "tar" else _read_manifest
    duplicates = set(task.duplicates)
    for position, record in enumerate(reader(task, max_caption_chars, repair_text)):
        if position in duplicates and not record.rejected:
            record.reject(Reject.ID_DUPLICATE, f"id {record.id!r} appeared earlier in the input; the first wins")
        yield record


def _read_tar(task: ShardTask, max_caption_chars: int, repair: bool) -> Iterator[Record]:
    with _open_tar(task.path) as tar:
        groups = _tar_groups(task.path, tar)
        for index, group in enumerate(groups):
            record = Record(id=group.key, source=quoted(task.source), shard=task.index, index=index)
            try:
                if group.error:
                    raise group.error
                _fill_from_members(record, tar, group.members, max_caption_chars, repair)
            except RecordError as err:
                record.reject(err.reason, err.message)
            yield record


@contextlib.contextmanager
def _open_tar(path: str) -> Iterator[tarfile.TarFile | None]:
    """The tar, or None when it cannot be opened (its one group already carries the error)."""
    with contextlib.ExitStack() as stack:
        try:
            tar = stack.enter_context(storage.open_tar(path))
        except (tarfile.TarError, OSError):
            tar = None
        yield tar


@dataclass
class _TarGroup:
    key: str
    members: list[tarfile.TarInfo]
    error: RecordError | None = None  # the shard could not be read past this point


def _tar_groups(path: str, tar: tarfile.TarFile | None = None) -> list[_TarGroup]:
    """Members grouped by sample key (the name up to the first dot), in tar order.

    A tar that is unreadable, or breaks off part-way, ends with one group carrying the error, so
    the damage is one reject rather than a failed run.
    """
    if tar is None:  # not opened yet, or could not be
        try:
            with storage.open_tar(path) as opened:
                return _tar_groups(path, opened)
        except (tarfile.TarError, OSError) as err:
            return [_TarGroup(storage.name(path), [], RecordError(Reject.TAR_CORRUPT, f"cannot read tar {path}: {err}"))]
    groups: list[_TarGroup] = []
    try:
        for member in tar:
            _add_member(groups, member)
    except (tarfile.TarError, OSError) as err:
        key = f"{storage.name(path)}#after-{len(groups)}"
        groups.append(_TarGroup(key, [], RecordError(Reject.TAR_CORRUPT, f"tar {path} breaks off: {err}")))
    return groups


def _add_member(groups: list[_TarGroup], member: tarfile.TarInfo) -> None:
    if member.isdir():
        return
    key = _member_key(member.name)
    if groups and groups[-1].key == key and groups[-1].error is None:
        groups[-1].members.append(member)
    else:
        groups.append(_TarGroup(key, [member]))


def _member_key(name: str) -> str:
    if "/" not in name:  # the usual flat tar, without the cost of a path object per member
        return name.split(".", 1)[0]
    base = PurePosixPath(name)
    stem = base.name.split(".", 1)[0]
    return str(base.parent / stem) if str(base.parent) != "." else stem


def _fill_from_members(record: Record, tar: tarfile.TarFile, members: list[tarfile.TarInfo], max_chars: int,
                       repair: bool):
    files = {_checked_extension(m): m for m in members}
    record.id = check_id(record.id)
    meta = _member_json(tar, files["json"], repair) if "json" in files else {}
    if "txt" in files:
        caption = decode_caption(_member_bytes(tar, files["txt"]), repair)
    else:
        caption = meta.get("caption")
    record.captions = check_captions(caption, max_chars, repair)
    record.meta = check_metadata(meta, repair)
    image_ext = next((ext for ext in files if ext in EXTENSIONS), None)
    if image_ext is None:
        raise RecordError(Reject.IMAGE_MISSING, f"no image member among {sorted(files)}")
    record.image_ext = image_ext
    record.image = _member_bytes(tar, files[image_ext])


def _checked_extension(member: tarfile.TarInfo) -> str:
    name = member.name
    path = PurePosixPath(name) if "/" in name else None
    if name.startswith("/") or ".." in (path.parts if path else (name,)) or "\\" in name:
        raise RecordError(Reject.PATH_UNSAFE, f"tar member {name!r} has an absolute or parent path")
    if not member.isfile():
        raise RecordError(Reject.MEMBER_UNEXPECTED, f"tar member {name!r} is a link or device, not a file")
    parts = (path.name if path else name).split(".", 1)
    return parts[1].lower() if len(parts) > 1 else ""


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    if handle is None:
        raise RecordError(Reject.MEMBER_UNEXPECTED, f"tar member {member.name!r} cannot be read")
    try:
        return handle.read()
    except (OSError, tarfile.TarError) as err:
        raise RecordError(Reject.IMAGE_CORRUPT, f"tar member {member.name!r} is truncated: {err}") from None


def _member_json(tar: tarfile.TarFile, member: tarfile.TarInfo, repair: bool) -> dict:
    """A sample's JSON metadata member; not UTF-8 is a reject (or repaired), not JSON is no metadata."""
    text = decode_text(_member_bytes(tar, member), f"metadata member {member.name!r}", Reject.TEXT_NOT_UTF8, repair)
    try:
        value = json.loads(text, parse_constant=str)
    except json.JSONDecodeError:
        return {}  # img2dataset's metadata is optional; a caption still comes from the .txt
    return value if isinstance(value, dict) else {}


def _read_manifest(task: ShardTask, max_caption_chars: int, repair: bool) -> Iterator[Record]:
    folder = storage.parent(task.path)
    for index, (line_number, fields) in enumerate(_manifest_rows(task, repair)):
        record = Record(id=quoted(f"{storage.name(task.path)}:{line_number}"),
                        source=quoted(f"{task.source}:{line_number}"), shard=task.index, index=index)
        try:
            _fill_from_manifest(record, fields, folder, max_caption_chars, repair)
        except RecordError as err:
            record.reject(err.reason, err.message)
        yield record


def _manifest_rows(task: ShardTask, repair: bool) -> Iterator[tuple[int, object]]:
    """(1-based line or row number, parsed object or a RecordError) for the task's range."""
    if task.kind == "parquet":
        for offset, row in enumerate(_parquet_rows(_parquet_range(task.path, task.start, task.stop))):
            yield task.start + offset + 1, row
        return
    with storage.open_file(task.path) as f:
        f.seek(task.offset)
        for number, line in zip(range(task.start + 1, task.stop + 1), f):
            yield number, _parse_line(line, repair)


def _parquet_range(path: str, start: int, stop: int) -> pa.Table:
    """Rows [start, stop) of a Parquet manifest, reading only the row groups that hold them."""
    with storage.open_file(path) as f:
        manifest = pq.ParquetFile(f)
        groups, first_row = row_groups_holding(manifest.metadata, start, stop)
        table = manifest.read_row_groups(groups)
    return table.slice(start - first_row, stop - start)


def row_groups_holding(metadata: pq.FileMetaData, start: int, stop: int) -> tuple[list[int], int]:
    """The row groups that hold rows [start, stop), and the number of the first row of the first one."""
    groups, first_row, row = [], 0, 0
    for group in range(metadata.num_row_groups):
        rows = metadata.row_group(group).num_rows
        if row < stop and row + rows > start:
            first_row = first_row if groups else row
            groups.append(group)
        row += rows
    return groups, first_row


def _parse_line(line: bytes, repair: bool) -> object:
    try:
        text = decode_text(line, "manifest line", Reject.LINE_INVALID, repair, encoding="utf-8")
    except RecordError as err:
        return err
    try:
        value = json.loads(text, parse_constant=str)
    except json.JSONDecodeError as err:
        return RecordError(Reject.LINE_INVALID, f"manifest line is not JSON: {err}")
    if not isinstance(value, dict):
        return RecordError(Reject.LINE_INVALID, f"manifest line is a JSON {type(value).__name__}, not an object")
    return value


def _fill_from_manifest(record: Record, fields: object, folder: str, max_chars: int, repair: bool) -> None:
    if isinstance(fields, RecordError):
        raise fields
    record.id = check_id(fields.get("id"))
    caption_key = next((k for k in CAPTION_KEYS if k in fields), "caption")
    record.captions = check_captions(fields.get(caption_key), max_chars, repair)
    record.meta = check_metadata({k: v for k, v in fields.items() if k not in ("id", "image", *CAPTION_KEYS)}, repair)
    record.image = _manifest_image(fields.get("image"), folder)
    record.image_ext = posixpath.splitext(str(fields["image"]))[1].lower().lstrip(".")


def _manifest_image(image: object, folder: str) -> bytes:
    """The image a manifest names: a path relative to the manifest's folder, or a storage URL (`s3://`);
    web addresses are for a downloader (img2dataset)."""
    if not isinstance(image, str) or not image:
        raise RecordError(Reject.IMAGE_MISSING, "the manifest line names no image path")
    check_name_text(image, "the image path")
    if image.startswith(("http://", "https://")):
        raise RecordError(Reject.IMAGE_MISSING, f"{image} is a web address; download images first (img2dataset)")
    try:
        return storage.read_bytes(image if storage.is_url(image) else storage.join(folder, image))
    except FileNotFoundError:
        raise RecordError(Reject.IMAGE_MISSING, f"image file {image} does not exist") from None
    except OSError as err:
        raise RecordError(Reject.IMAGE_MISSING, f"cannot read image file {image}: {err.strerror}") from None
    except ValueError:  # a NUL character, which no file name holds
        raise RecordError(Reject.IMAGE_MISSING, f"image path {image!r} cannot name a file") from None


# ---- Parquet rows as Python values -----------------------------------------------------------

def _parquet_rows(table: pa.Table) -> list[object]:
    """The table's rows as dicts, never failing on text: strings (and binary values, since metadata is
    written as JSON) are decoded as UTF-8 with `surrogateescape`, so an undecodable byte becomes a
    lone surrogate that the record checks reject or repair, field by field.

    A column type whose text cannot be read that way turns every row into a reject rather than
    stopping the run.
    """
    try:
        rows = table.cast(pa.schema([f.with_type(_text_as_bytes(f.type)) for f in table.schema])).to_pylist()
    except (pa.ArrowException, UnicodeDecodeError) as err:
        return [RecordError(Reject.LINE_INVALID, f"Parquet row cannot be read: {err}") for _ in range(table.num_rows)]
    return [_json_value(row) for row in rows]


def _text_as_bytes(kind: pa.DataType) -> pa.DataType:
    """The type with every string type in it replaced by its binary twin (the bytes, unchecked)."""
    if pa.types.is_string(kind):
        return pa.binary()
    if pa.types.is_large_string(kind):
        return pa.large_binary()
    if pa.types.is_string_view(kind):
        return pa.binary_view()
    if pa.types.is_dictionary(kind):
        return _text_as_bytes(kind.value_type)
    if pa.types.is_map(kind):
        return pa.map_(_text_as_bytes(kind.key_type), kind.item_field.with_type(_text_as_bytes(kind.item_type)))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        value = kind.value_field.with_type(_text_as_bytes(kind.value_type))
        if pa.types.is_fixed_size_list(kind):
            return pa.list_(value, kind.list_size)
        return pa.large_list(value) if pa.types.is_large_list(kind) else pa.list_(value)
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(_text_as_bytes(f.type)) for f in kind])
    return kind


def _json_value(value: object) -> object:
    """A row value as JSON can hold it, since metadata is written as JSON: bytes decoded as UTF-8 (undecodable
    bytes kept as lone surrogates), dates and times in ISO 8601, decimals, durations and NaN or infinite floats as
    their text (as the JSONL reader keeps `NaN`), so every metadata file is strict JSON."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    not_finite = isinstance(value, float) and not math.isfinite(value)
    if isinstance(value, (decimal.Decimal, datetime.timedelta)) or not_finite:
        return str(value)
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item) for item in value]
    return value
