"""Checking image bytes: decodable, a real image, not a decompression bomb. Never re-encoded here;
decoded for the models and the audit (`decode_rgb`, `shard_image`)."""

from __future__ import annotations

import io
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path

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


def shard_image(tar_path: str | Path, sample_id: str) -> Image.Image | None:
    """A written sample's image from its output shard, upright RGB; None when it cannot be read."""
    try:
        with storage.open_tar(tar_path) as tar:
            for member in tar:
                stem, _, extension = member.name.partition(".")
                if stem == sample_id and extension.lower() in EXTENSIONS:
                    return decode_rgb(tar.extractfile(member).read())
    except (OSError, tarfile.TarError):
        return None
    return None
