"""Checking image bytes: decodable, a real image, not a decompression bomb. Never re-encoded here;
decoded for the models and the audit (`decode_rgb`, `shard_image`)."""

from __future__ import annotations

import io
import math
import tarfile
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from tagmill.engine import storage
from tagmill.engine.records import RecordError, Reject

# The first bytes of the formats above: data that starts like an image but will not open is corrupt.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
EXTENSIONS = {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"}
_EXT_OF_FORMAT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif",
                  "MPO": "jpg"}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str  # PIL's name: JPEG, PNG, ...
    width: int  # as displayed, after the EXIF orientation
    height: int
    mode: str

    @property
    def extension(self) -> str:
        return _EXT_OF_FORMAT.get(self.format, self.format.lower())


def inspect_image(data: bytes | None, max_pixels: int) -> ImageInfo:
    """Verify and decode the whole image once to prove it is usable; RecordError says why it is not.

    `max_pixels` is checked from the header before decoding; PIL's own guard still refuses images
    over twice its `Image.MAX_IMAGE_PIXELS`.
    """
    if not data:
        raise RecordError(Reject.IMAGE_EMPTY, "the image file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            return _decode(data, max_pixels)
    except RecordError:
        raise
    except Image.DecompressionBombError as err:
        raise RecordError(Reject.IMAGE_TOO_LARGE, str(err)) from None
    except UnidentifiedImageError:
        if data.startswith(_SIGNATURES):
            raise RecordError(Reject.IMAGE_CORRUPT, "the image header is damaged") from None
        raise RecordError(Reject.NOT_AN_IMAGE, "not an image file PIL can identify") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise RecordError(Reject.IMAGE_CORRUPT, f"cannot decode the image: {err}") from None


def _decode(data: bytes, max_pixels: int) -> ImageInfo:
    with Image.open(io.BytesIO(data)) as image:
        _check_pixels(image.size, max_pixels)
        if not _verifies(image):
            return _decoded_info(image)
        image.verify()  # checksums (PNG chunk CRCs) that decoding alone skips; it leaves the image undecodable
    with Image.open(io.BytesIO(data)) as image:
        return _decoded_info(image)


def _verifies(image: Image.Image) -> bool:
    """Whether the image's format checks anything in `verify()` (PNG: its chunk CRCs); for the others
    it only closes the file, and a second opening would be wasted."""
    return type(image).verify is not ImageFile.ImageFile.verify


def _decoded_info(image: Image.Image) -> ImageInfo:
    image.load()
    width, height = _displayed_size(image)
    return ImageInfo(image.format or "", width, height, image.mode)


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise RecordError(Reject.IMAGE_TOO_LARGE,
                          f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")


def _displayed_size(image: Image.Image) -> tuple[int, int]:
    orientation = image.getexif().get(0x0112, 1) if hasattr(image, "getexif") else 1
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def upright(image: Image.Image) -> Image.Image:
    """The image as it is meant to be seen (EXIF orientation applied), for stages that look at pixels."""
    return ImageOps.exif_transpose(image)


def decode_rgb(data: bytes) -> Image.Image:
    """Encoded image bytes as an upright RGB image, for the models."""
    with Image.open(io.BytesIO(data)) as opened:
        return upright(opened).convert("RGB")


def shard_image(tar_path: str | Path, sample_id: str, place: Sequence[int] | None = None) -> Image.Image | None:
    """A written sample's image from its output shard, upright RGB; None when it cannot be read.

    `place` is where the image's bytes sit in the tar (offset, size), as the shard's Parquet records
    them: only those bytes are read. Without one (shards of schema 2 and earlier) the tar is scanned.
    """
    tar_path = str(tar_path)
    sample = {"shard": storage.name(tar_path).removesuffix(".tar"), "image": place}
    return decoded_or_none(read_images(storage.parent(tar_path), {sample_id: sample}).get(sample_id))


def read_images(shards: str, samples: dict[str, dict]) -> dict[str, bytes]:
    """The encoded images of written samples ({id: {"shard": name, "image": place or None}}, as the report's
    examples and the audit's items hold them); a sample whose image cannot be read has none.

    Placed images are fetched together, one ranged read each (at once on an object store); the others,
    and any whose ranged read failed, by one scan of each of their shards.
    """
    placed = {sample_id: sample for sample_id, sample in samples.items() if sample.get("image")}
    tars = [storage.join(shards, f"{sample['shard']}.tar") for sample in placed.values()]
    found = {sample_id: data for sample_id, data in zip(placed, _ranged(tars, [s["image"] for s in placed.values()]))
             if data is not None}
    scans: dict[str, set[str]] = defaultdict(set)
    for sample_id, sample in samples.items():
        if sample_id not in found:
            scans[sample["shard"]].add(sample_id)
    for shard, ids in sorted(scans.items()):
        found.update(_scanned(storage.join(shards, f"{shard}.tar"), ids))
    return found


def image_place(offset: int | float | None, size: int | float | None) -> list[int] | None:
    """A shard row's image place, [offset, size]; None where the shard keeps none (schema 2 and earlier,
    read alone or, through pandas, beside later shards as NaN)."""
    if offset is None or (isinstance(offset, float) and math.isnan(offset)):
        return None
    return [int(offset), int(size)]


def _ranged(tars: list[str], places: list[Sequence[int]]) -> list[bytes | None]:
    """Each place's bytes from its tar; None for a read that failed."""
    starts = [int(offset) for offset, _ in places]
    ends = [int(offset) + int(size) for offset, size in places]
    return [data if isinstance(data, bytes) else None for data in storage.read_ranges(tars, starts, ends)]


def _scanned(tar_path: str, ids: set[str]) -> dict[str, bytes]:
    """The first image member of each wanted sample, reading the tar once."""
    found: dict[str, bytes] = {}
    try:
        with storage.open_tar(tar_path) as tar:
            for member in tar:
                stem, _, extension = member.name.partition(".")
                if stem in ids and extension.lower() in EXTENSIONS and stem not in found:
                    found[stem] = tar.extractfile(member).read()
    except (OSError, tarfile.TarError):
        pass  # what was found before the tar broke off is kept; the rest have no image
    return found


def decoded_or_none(data: bytes | None) -> Image.Image | None:
    """Encoded image bytes as upright RGB, or None when there are none or they do not decode."""
    if data is None:
        return None
    try:
        return decode_rgb(data)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def jpeg_thumbnail(image: Image.Image, size: int, quality: int) -> bytes:
    """The image at most `size` pixels a side, as JPEG bytes."""
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
