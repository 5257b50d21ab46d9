"""Reading the pipeline's shards for training and evaluation: streaming webdataset, multi-worker.

Shards may live anywhere `engine.storage` reaches (local folders, `s3://`, `gs://`, ...): webdataset
reads the streams storage opens. Samples are split into training and held-out by a stable hash of
their key, so every epoch, worker and rerun agrees on the split without a split file. A sample whose
image will not decode is skipped and counted, never a crash. Training on several processes deals each
its own shards (`share_shards`), and every process cuts its share into the same number of batches.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import webdataset as wds
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms.v2 import functional as F
from webdataset.tariterators import group_by_keys, tar_file_expander

from tagmill.engine import storage
from tagmill.engine.images import EXTENSIONS, decode_rgb

HOLDOUT_BUCKETS = 10_000


class ShardError(ValueError):
    """Shards that cannot be trained or evaluated on at all."""


def shard_paths(shards: str | Path) -> list[str]:
    """The .tar shards of a folder (a pipeline output's `shards/`, or the output folder itself), a glob or a
    .tar file; a path or a URL."""
    text = str(shards)
    if any(c in text for c in "*?["):
        paths = storage.glob(text)
    elif text.endswith(".tar") and storage.is_file(text):
        paths = [text]
    else:
        paths = storage.glob(storage.join(_shards_folder(text), "*.tar"))
    if not paths:
        raise ShardError(f"no .tar shards at {shards}")
    return paths


def _shards_folder(folder: str) -> str:
    """A pipeline output's `shards/` folder, or the folder itself."""
    inner = storage.join(folder, "shards")
    return inner if storage.is_dir(inner) else folder


def in_split(key: str, split: str, holdout: float) -> bool:
    """Whether a sample belongs to `split` ("train", "holdout" or "all"), by a stable hash of its key."""
    if split == "all":
        return True
    held_out = zlib.crc32(key.encode()) % HOLDOUT_BUCKETS < holdout * HOLDOUT_BUCKETS
    return held_out if split == "holdout" else not held_out


@dataclass
class SampleDecoder:
    """One shard sample to (image tensor, multi-hot target, key), or None when it cannot be used."""

    tag_index: dict[str, int]
    image_size: int
    mean: list[float]
    std: list[float]
    sources: tuple[str, ...] = ()  # only tags from these sources are targets; empty: the final tags
    augment: bool = False  # training augmentation: random horizontal flips and shifts
    preprocess: Callable[[Image.Image], torch.Tensor] | None = None  # the architecture's own (the official
    # families' Pillow resize and ImageNet normalization); None: resize and normalize as the tagger trains

    def __call__(self, sample: dict) -> tuple[torch.Tensor, torch.Tensor, str, str] | None:
        try:
            meta = json.loads(sample["json"])
            image = self._image(sample)
        except (KeyError, ValueError, OSError, SyntaxError, AttributeError):
            return None
        captions = meta.get("captions") or [""]
        caption = random.choice(captions) if self.augment else captions[0]  # for a caption head
        return image, self.target(meta), sample["__key__"], caption

    def target(self, meta: dict) -> torch.Tensor:
        target = torch.zeros(len(self.tag_index))
        for tag in self._tags(meta):
            if tag in self.tag_index:
                target[self.tag_index[tag]] = 1.0
        return target

    def _tags(self, meta: dict) -> list[str]:
        if not self.sources:
            return meta.get("tags", [])
        found = meta.get("tag_sources", {})
        return [tag for tag, entries in found.items() if any(e.get("source") in self.sources for e in entries)]

    def _image(self, sample: dict) -> torch.Tensor:
        data = next((sample[ext] for ext in sample if ext in EXTENSIONS), None)
        if data is None:
            raise ValueError("the sample has no image")
        return self.transform(decode_rgb(data))

    def transform(self, image: Image.Image) -> torch.Tensor:
        if self.preprocess is not None:
            tensor = self.preprocess(image)
            return _flip_and_shift(tensor) if self.augment else tensor
        tensor = F.to_dtype(F.pil_to_tensor(image), torch.float32, scale=True)
        tensor = F.resize(tensor, [self.image_size, self.image_size], antialias=True)
        if self.augment:
            tensor = _flip_and_shift(tensor)
        return F.normalize(tensor, self.mean, self.std)


def _flip_and_shift(image: torch.Tensor, max_shift: float = 0.1) -> torch.Tensor:
    """A random horizontal flip and a shift of up to `max_shift` of the side, edges reflected."""
    if random.random() < 0.5:
        image = F.horizontal_flip(image)
    size = image.shape[-1]
    pad = max(1, round(size * max_shift))
    padded = torch.nn.functional.pad(image[None], (pad, pad, pad, pad), mode="reflect")[0]
    top, left = random.randint(0, 2 * pad), random.randint(0, 2 * pad)
    return padded[:, top:top + size, left:left + size]


@dataclass
class Batch:
    images: torch.Tensor
    targets: torch.Tensor
    keys: list[str]
    skipped: int  # samples in this batch's stretch of the stream that could not be decoded
    captions: list[str] = field(default_factory=list)


SKIPPED = "skipped"  # stands in for an undecodable sample, which webdataset's map would drop unseen


@dataclass
class _MarkSkipped:
    decoder: SampleDecoder

    def __call__(self, sample: dict):
        decoded = self.decoder(sample)
        return SKIPPED if decoded is None else decoded


def collate(items: list) -> Batch:
    usable = [item for item in items if item is not None and not isinstance(item, str)]
    skipped = len(items) - len(usable)
    if not usable:
        return Batch(torch.empty(0), torch.empty(0), [], skipped)
    images, targets, keys, *captions = zip(*usable)
    return Batch(torch.stack(images), torch.stack(targets), list(keys), skipped, list(captions[0]) if captions else [])


def make_loader(paths: list[str], decoder: SampleDecoder, batch_size: int, split: str, holdout: float,
                workers: int = 0, shuffle_seed: int | None = None) -> DataLoader:
    """Batches of one split; with `shuffle_seed`, shards and samples are shuffled deterministically."""
    return DataLoader(_split_pipeline(paths, decoder, split, holdout, shuffle_seed), batch_size=batch_size,
                      num_workers=workers, collate_fn=collate, worker_init_fn=_single_thread_worker,
                      persistent_workers=False)


def _split_pipeline(paths: list[str], decoder: SampleDecoder, split: str, holdout: float,
                    shuffle_seed: int | None) -> wds.DataPipeline:
    """One split's decoded samples, each DataLoader worker reading its own shards."""
    stages = [wds.SimpleShardList(paths)]
    if shuffle_seed is not None:
        stages.append(wds.shuffle(len(paths), rng=random.Random(shuffle_seed)))
    stages += [wds.split_by_worker, _tar_samples,
               wds.select(lambda s: in_split(s["__key__"], split, holdout))]
    if shuffle_seed is not None:
        stages.append(wds.shuffle(2000, initial=500, rng=random.Random(shuffle_seed + 1)))
    stages.append(wds.map(_MarkSkipped(decoder)))
    return wds.DataPipeline(*stages)


def _tar_samples(shards: Iterable[dict]) -> Iterator[dict]:
    """webdataset's `tarfile_to_samples` over streams opened by `storage`, so a shard may be a URL of any
    fsspec protocol; a shard that cannot be read is warned about and passed over."""
    files = tar_file_expander(_opened(shards), handler=wds.warn_and_continue)
    return group_by_keys(files, handler=wds.warn_and_continue)


def _opened(shards: Iterable[dict]) -> Iterator[dict]:
    """Each shard with its open stream, closed once its samples have been read."""
    for shard in shards:
        try:
            stream = storage.open_file(shard["url"])
        except OSError as err:
            err.args += (shard["url"],)
            wds.warn_and_continue(err)
            continue
        with stream:
            yield {**shard, "stream": stream}


def _single_thread_worker(_: int) -> None:
    torch.set_num_threads(1)


def iterate_batches(loader: DataLoader) -> Iterator[Batch]:
    yield from loader


# ---- several processes: each its own shards, all the same number of batches -------------------

@dataclass(frozen=True)
class Share:
    """One process's part of the training split: its shards, their training samples, and the number of
    batches every process takes per epoch."""

    shards: list[str]
    samples: int
    batches: int


def share_shards(paths: list[str], counts: list[int], processes: int, batch_size: int) -> list[Share]:
    """The shards dealt out to `processes`, each shard (with its `counts` training samples) to one.

    Shards go largest first to the share with the fewest samples so far, which evens the shares as far
    as whole shards allow. DistributedDataParallel hangs when processes take different numbers of
    steps, so every share is cut into the same number of batches, as many as the largest needs at
    `batch_size`; a smaller share's batches are smaller, and every sample is trained on once an epoch."""
    members: list[list[str]] = [[] for _ in range(processes)]
    loads = [0] * processes
    for count, path in sorted(zip(counts, paths), key=lambda item: (-item[0], item[1])):
        lightest = loads.index(min(loads))
        members[lightest].append(path)
        loads[lightest] += count
    batches = math.ceil(max(loads) / batch_size)
    if min(loads) < max(batches, 1):
        raise ShardError(f"{len(paths)} shards of {sum(counts)} training samples cannot be shared by {processes} "
                         f"processes: one would get {min(loads)} samples for its {batches} batches an epoch "
                         f"(write more, smaller shards, or train on fewer processes)")
    return [Share(sorted(shards), load, batches) for shards, load in zip(members, loads)]


def share_batches(share: Share, decoder: SampleDecoder, holdout: float, workers: int,
                  shuffle_seed: int) -> Iterator[Batch]:
    """A share's training samples, shuffled, in its `batches` batches of sizes that differ by at most one.

    The workers hand over single samples, which this process cuts into batches: a worker's own
    batches would end short wherever its shards do."""
    prefetch = max(2, math.ceil(2 * share.samples / share.batches / workers)) if workers else None
    samples = DataLoader(_split_pipeline(share.shards, decoder, "train", holdout, shuffle_seed), batch_size=None,
                         num_workers=workers, worker_init_fn=_single_thread_worker, prefetch_factor=prefetch)
    sizes = [share.samples // share.batches + (i < share.samples % share.batches) for i in range(share.batches)]
    return _cut(iter(samples), sizes, share)


def _cut(samples: Iterator, sizes: list[int], share: Share) -> Iterator[Batch]:
    for size in sizes:
        items = list(itertools.islice(samples, size))
        if len(items) < size:
            raise _miscounted(share)
        yield collate(items)
    if next(samples, None) is not None:
        raise _miscounted(share)


def _miscounted(share: Share) -> ShardError:
    return ShardError(f"the shards {', '.join(share.shards)} hold other training samples than the {share.samples} "
                      f"their Parquet files list, so this process cannot take as many batches as the others")
