"""Tars in webdataset's layout, written with the standard library.

Each sample is a key and its members (extension → bytes); a member is stored as `KEY.EXT`, a sample's
members together in extension order, with a fixed owner, mode and time, so that the same samples
always give the same bytes: those of webdataset's `TarWriter(encoder=False, mtime=0)`. Importing
webdataset loads torch; writing through here loads nothing of the model stack.

The writer returns where each member's bytes sit in the tar, so one member can later be read with a
single ranged read (`storage.read_ranges`) rather than a scan of the whole tar.
"""

from __future__ import annotations

import io
import tarfile
from typing import BinaryIO, Iterable

Sample = tuple[str, dict[str, bytes]]
Place = tuple[int, int]  # a member's bytes in the tar: (offset, size)


def write_tar(stream: BinaryIO, samples: Iterable[Sample]) -> list[dict[str, Place]]:
    """Write the samples; returns, for each sample in order, where each of its members' bytes sit."""
    places = []
    with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for key, members in samples:
            places.append({})
            for ext, data in sorted(members.items()):
                tar.addfile(_member(f"{key}.{ext}", len(data)), io.BytesIO(data))
                places[-1][ext] = (tar.offset - _padded(len(data)), len(data))  # the data ends its blocks
    return places


def _padded(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o444, "bigdata", "bigdata"
    return info
