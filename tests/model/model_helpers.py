"""Small builders shared by the model tests: taggers, images, shard samples and tar shards."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from tagmill.model.caption import train_tokenizer
from tagmill.model.config import model_config
from tagmill.model.tagger import Tagger

TEXT_DIM = 32


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One intra-op thread: on a small shared CPU more threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


CAPTIONS = ["a red circle on the grass", "two blue squares by the sea", "a green star in the snow"]


def build_tagger(name: str, num_tags: int = 6, seed: int = 0) -> Tagger:
    """A registered architecture with random text embeddings where it scores tags by their text, and a
    caption tokenizer of a few captions where it has a caption head."""
    torch.manual_seed(seed)
    config = model_config(name)
    text = torch.randn(num_tags, TEXT_DIM) if config.head.queries == "text" else None
    tokenizer = train_tokenizer(CAPTIONS, 100) if config.caption.enabled else None
    return Tagger(config, num_tags, text, tokenizer)


def images(model: Tagger, batch: int = 2, seed: int = 1) -> torch.Tensor:
    size = model.config.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def jpeg_bytes(size=(40, 30), color=(255, 255, 255), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def png_bytes(size=(20, 20), mode="RGBA", color=(0, 0, 255, 128)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def shard_json(tags: list[str], sources: dict[str, list[str]] | None = None, captions: list[str] | None = None
               ) -> bytes:
    """A shard sample's JSON as the pipeline writes it: final tags and, per tag, where it came from; its
    captions when given."""
    sources = sources or {tag: ["parsed"] for tag in tags}
    tag_sources = {tag: [{"source": source, "caption": 0} for source in found] for tag, found in sources.items()}
    meta = {"tags": tags, "tag_sources": tag_sources}
    if captions is not None:
        meta["captions"] = captions
    return json.dumps(meta).encode()


def sample(key: str, tags: list[str], image: bytes | None = None, ext: str = "jpg",
           sources: dict[str, list[str]] | None = None) -> dict:
    """A sample as webdataset reads it from a shard: the key and raw bytes per extension."""
    found = {"__key__": key, "json": shard_json(tags, sources)}
    if image is not None:
        found[ext] = image
    return found


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    """A tar of `name -> bytes` members, with a Parquet table of the sample ids beside it."""
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ids = sorted({name.split(".", 1)[0] for name in members})
    pq.write_table(pa.table({"id": ids}), path.with_suffix(".parquet"))
    return path


COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 220)}


def run_colour(key: str) -> str:
    """The colour of a `write_run` sample."""
    return list(COLOURS)[int(key[2:]) % len(COLOURS)]


def write_run(folder: Path, shard_sizes: list[int], captions: bool = False) -> Path:
    """A run's output as training reads it: `shards/` with tars of the given sizes, each sample a plain
    image of one colour tagged with the colour's name (and, with `captions`, a caption naming it), and the
    run's vocab.json with those tags."""
    (folder / "shards").mkdir(parents=True)
    for shard, size in enumerate(shard_sizes):
        members = {}
        for index in range(size):
            key = f"{shard:02d}{index:04d}"
            colour = run_colour(key)
            members[f"{key}.jpg"] = jpeg_bytes((32, 32), COLOURS[colour])
            members[f"{key}.json"] = shard_json([colour], captions=[f"a {colour} square"] if captions else None)
        write_tar(folder / "shards" / f"{shard:05d}.tar", members)
    (folder / "vocab.json").write_text(json.dumps({"tags": list(COLOURS)}))
    return folder
