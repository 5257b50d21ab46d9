"""inspect_image: unusual but valid images pass with their displayed size; broken ones get the right reason."""

from __future__ import annotations

import io
import random
import struct
import warnings
import zlib

import pytest
from PIL import Image, features

from tagmill.engine.images import inspect_image, read_images, shard_image
from tagmill.engine.records import RecordError, Reject
from tagmill.engine.webdataset_tar import write_tar

LIMIT = 1_000_000


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Incompressible pixels, so that cutting the file cuts the image data."""
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def palette_with_transparency() -> bytes:
    image = Image.new("P", (6, 5), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    return encode(image, "PNG", transparency=0)


def exif_rotated_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(Image.new("RGB", (8, 4), (10, 200, 30)), "JPEG", exif=exif)


def rejection(data: bytes | None, max_pixels: int = LIMIT) -> RecordError:
    with pytest.raises(RecordError) as caught:
        inspect_image(data, max_pixels)
    return caught.value


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def damage_chunk(png: bytes, kind: bytes, part: str) -> bytes:
    """The PNG with one byte flipped in the middle of the chunk's "data" or in its "crc"."""
    start = png.index(kind) + 4
    length = struct.unpack(">I", png[start - 8:start - 4])[0]
    damaged = bytearray(png)
    damaged[start + (length // 2 if part == "data" else length)] ^= 0xFF
    return bytes(damaged)


# ---- accepted ------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, fmt, size, mode", [
    pytest.param(encode(Image.new("CMYK", (8, 6), (0, 50, 100, 0)), "JPEG"), "JPEG", (8, 6), "CMYK", id="cmyk-jpeg"),
    pytest.param(encode(Image.new("I;16", (5, 4), 40_000), "PNG"), "PNG", (5, 4), "I;16", id="16-bit-png"),
    pytest.param(encode(Image.new("RGBA", (3, 7), (1, 2, 3, 4)), "PNG"), "PNG", (3, 7), "RGBA", id="rgba-png"),
    pytest.param(palette_with_transparency(), "PNG", (6, 5), "P", id="palette-png-transparency"),
    pytest.param(encode(Image.new("L", (9, 2), 7), "PNG"), "PNG", (9, 2), "L", id="grey-png"),
    pytest.param(encode(Image.new("L", (9, 2), 7), "JPEG"), "JPEG", (9, 2), "L", id="grey-jpeg"),
    pytest.param(exif_rotated_jpeg(6), "JPEG", (4, 8), "RGB", id="exif-orientation-6"),
    pytest.param(exif_rotated_jpeg(8), "JPEG", (4, 8), "RGB", id="exif-orientation-8"),
    pytest.param(exif_rotated_jpeg(3), "JPEG", (8, 4), "RGB", id="exif-orientation-3"),
])
def test_valid_images(data, fmt, size, mode):
    info = inspect_image(data, LIMIT)
    assert (info.format, (info.width, info.height), info.mode) == (fmt, size, mode)


@pytest.mark.skipif(not features.check("webp"), reason="this Pillow was built without WebP support")
def test_webp():
    info = inspect_image(encode(Image.new("RGB", (10, 5), (9, 9, 9)), "WEBP"), LIMIT)
    assert (info.format, info.width, info.height, info.extension) == ("WEBP", 10, 5, "webp")


def test_extension_follows_the_format():
    assert inspect_image(encode(Image.new("RGB", (2, 2)), "JPEG"), LIMIT).extension == "jpg"
    assert inspect_image(encode(Image.new("RGB", (2, 2)), "PNG"), LIMIT).extension == "png"


def test_image_at_the_pixel_limit_is_accepted():
    info = inspect_image(encode(Image.new("RGB", (10, 10)), "PNG"), 100)
    assert (info.width, info.height) == (10, 10)


# ---- rejected ------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", None])
def test_empty(data):
    assert rejection(data).reason == Reject.IMAGE_EMPTY


@pytest.mark.parametrize("data", [
    pytest.param(random.Random(1).randbytes(512), id="random-bytes"),
    pytest.param(b"a dog on the grass\n", id="text-file"),
    pytest.param(b'{"caption": "a dog"}', id="json"),
])
def test_not_an_image(data):
    assert rejection(data).reason == Reject.NOT_AN_IMAGE


def test_truncated_jpeg():
    jpeg = encode(noise(64, 64), "JPEG", quality=95)
    error = rejection(jpeg[: len(jpeg) // 2])
    assert error.reason == Reject.IMAGE_CORRUPT
    assert "truncated" in error.message


def test_truncated_png():
    png = encode(noise(64, 64), "PNG")
    assert rejection(png[: len(png) // 2]).reason == Reject.IMAGE_CORRUPT


def test_over_the_pixel_limit():
    error = rejection(encode(Image.new("RGB", (20, 20)), "PNG"), max_pixels=100)
    assert error.reason == Reject.IMAGE_TOO_LARGE
    assert "20x20" in error.message


def header_only_png(width: int, height: int) -> bytes:
    """A PNG header claiming this size, with no pixel data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_limit_is_checked_from_the_header_before_decoding():
    assert rejection(header_only_png(10_000, 10_000), max_pixels=1_000_000).reason == Reject.IMAGE_TOO_LARGE


def test_decompression_bomb_beyond_pils_own_guard():
    assert rejection(header_only_png(100_000, 100_000), max_pixels=10**12).reason == Reject.IMAGE_TOO_LARGE


def test_own_pixel_limit_replaces_pils_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rejection(header_only_png(10_000, 10_000), max_pixels=1_000_000)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_png_with_corrupted_idat_data():
    png = encode(noise(16, 16), "PNG")
    assert rejection(damage_chunk(png, b"IDAT", "data")).reason == Reject.IMAGE_CORRUPT


def test_png_with_corrupted_idat_crc():
    png = encode(noise(16, 16), "PNG")
    assert rejection(damage_chunk(png, b"IDAT", "crc")).reason == Reject.IMAGE_CORRUPT


def test_png_with_corrupted_header_crc():
    png = encode(Image.new("RGB", (4, 4), (200, 10, 10)), "PNG")
    assert rejection(damage_chunk(png, b"IHDR", "crc")).reason == Reject.IMAGE_CORRUPT


def test_a_written_samples_image_is_read_at_its_place_without_scanning_the_tar(tmp_path):
    """The Parquet's place reads just the image's bytes: a placed read works even where the file is no tar."""
    jpeg = encode(noise(8, 6), "JPEG")
    with open(tmp_path / "00000.tar", "wb") as stream:
        places = write_tar(stream, [("a", {"jpg": jpeg, "json": b"{}"}), ("b", {"jpg": b"not an image"})])
    (tmp_path / "00001.tar").write_bytes(b"x" * 7 + jpeg)  # not a tar: only a ranged read finds the image
    samples = {"a": {"shard": "00000", "image": None}, "b": {"shard": "00000", "image": list(places[1]["jpg"])},
               "c": {"shard": "00001", "image": [7, len(jpeg)]}}
    found = read_images(str(tmp_path), samples)
    assert found == {"a": jpeg, "b": b"not an image", "c": jpeg}  # a: scanned, since no place was recorded
    assert shard_image(tmp_path / "00001.tar", "c", (7, len(jpeg))).size == (8, 6)
    assert shard_image(tmp_path / "00000.tar", "b", places[1]["jpg"]) is None  # bytes that do not decode
    assert shard_image(tmp_path / "00000.tar", "a").size == (8, 6)
