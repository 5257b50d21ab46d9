"""Cleaning decisions: which candidate tags of a sample are dropped, by which rule, with what score.

Three rules, as in RAM's data engine, each on its own switch:
- `clip_similarity`: the CLIP similarity of the image and the tag's text is below the tag's
  threshold (fixed, or calibrated per tag from the similarities of the samples that carry it);
- `cluster_outlier`: among the samples carrying a tag, the image embedding lies farther from its
  nearest k-means centroid than the tag's cutoff (the distance beyond which the farthest share of a
  bounded per-tag sample lies);
- `no_model_support`: a tag the captions name which the tagger scores well below the tag's own
  threshold (its probabilities are not calibrated across tags, so the threshold is the yardstick).

Per-tag statistics are fitted on bounded samples (`fit_tag_statistics`), then every sample is
judged on its own (`decide`), so the memory of fitting does not grow with the dataset.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tagmill.engine import storage

MIN_POINTS_PER_CLUSTER = 10
log = logging.getLogger(__name__)


class Rule:
    SIMILARITY = "clip_similarity"
    OUTLIER = "cluster_outlier"
    SUPPORT = "no_model_support"


@dataclass
class SimilarityRuleConfig:
    enabled: bool = True
    threshold: float | None = None  # one fixed threshold for every tag; unset: calibrated per tag
    deviations: float = 3.0  # calibrated: drop below the median minus this many robust deviations
    floor: float = 0.0  # a calibrated threshold is never below this
    min_samples: int = 20  # tags with fewer samples use `floor` (or the fixed threshold)


@dataclass
class OutlierRuleConfig:
    enabled: bool = True
    drop_fraction: float = 0.1  # RAM dropped the farthest 10% of each tag's images
    clusters: int = 4  # k-means centroids per tag (fewer when a tag has few samples)
    min_samples: int = 40  # tags with fewer samples are not judged
    iterations: int = 20


@dataclass
class SupportRuleConfig:
    enabled: bool = True
    margin: float = 0.0  # a caption's tag is dropped when the tagger scores it this far below the tag's threshold


@dataclass
class CleanRules:
    similarity: SimilarityRuleConfig = field(default_factory=SimilarityRuleConfig)
    outliers: OutlierRuleConfig = field(default_factory=OutlierRuleConfig)
    support: SupportRuleConfig = field(default_factory=SupportRuleConfig)
    sample_per_tag: int = 2_000  # per-tag statistics are fitted on at most this many samples
    seed: int = 0

    @property
    def uses_clip(self) -> bool:
        """Whether a rule needs CLIP embeddings (without them only the tagger's support is judged)."""
        return self.similarity.enabled or self.outliers.enabled


@dataclass
class TagStatistics:
    """What judging one tag needs: its similarity threshold and its clusters."""

    similarity_threshold: float | None = None
    centroids: np.ndarray | None = None  # (k, dim), unit length
    cutoff: float | None = None  # distances above it are outliers

    def to_json(self) -> dict:
        return {"similarity_threshold": self.similarity_threshold, "cutoff": self.cutoff,
                "clusters": 0 if self.centroids is None else len(self.centroids)}


@dataclass
class Candidate:
    """One tag of one sample before cleaning, with every score computed for it."""

    tag: str
    parsed: bool  # named by a caption
    tagger: float | None = None  # the tagging model's probability
    tagger_threshold: float | None = None  # the tagging model's threshold for this tag
    clip: float | None = None  # image-text similarity
    outlier: float | None = None  # cosine distance to the tag's nearest centroid


@dataclass
class TagDrop:
    tag: str
    rule: str
    score: float
    threshold: float


def sample_priority(sample_id: str, tag: str, seed: int) -> int:
    """A stable pseudo-random rank: the samples with the lowest ranks form a tag's bounded sample."""
    digest = hashlib.blake2b(f"{seed}\0{tag}\0{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def fit_tag_statistics(similarities: np.ndarray, embeddings: np.ndarray, rules: CleanRules,
                       gpu: bool = False) -> TagStatistics:
    """Threshold and clusters of one tag from (a bounded sample of) the samples that carry it; k-means on
    the GPU with `gpu` (a faiss GPU build)."""
    stats = TagStatistics()
    if rules.similarity.enabled:
        stats.similarity_threshold = similarity_threshold(similarities, rules.similarity)
    if rules.outliers.enabled and len(embeddings) >= rules.outliers.min_samples:
        stats.centroids, stats.cutoff = fit_clusters(embeddings, rules.outliers, rules.seed, gpu)
    return stats


def similarity_threshold(similarities: np.ndarray, config: SimilarityRuleConfig) -> float:
    """The fixed threshold, or the tag's median minus `deviations` robust standard deviations."""
    if config.threshold is not None:
        return float(config.threshold)
    if len(similarities) < config.min_samples:
        return float(config.floor)
    median = float(np.median(similarities))
    spread = 1.4826 * float(np.median(np.abs(similarities - median)))  # the MAD, scaled to a normal's sigma
    return max(float(config.floor), median - config.deviations * spread)


def fit_clusters(embeddings: np.ndarray, config: OutlierRuleConfig, seed: int,
                 gpu: bool = False) -> tuple[np.ndarray, float]:
    """k-means centroids of a tag's image embeddings and the distance its farthest share lies beyond."""
    import faiss

    points = _unit(embeddings)
    k = max(1, min(config.clusters, len(points) // MIN_POINTS_PER_CLUSTER))
    kmeans = faiss.Kmeans(points.shape[1], k, niter=config.iterations, seed=seed, spherical=True,
                          min_points_per_centroid=1, max_points_per_centroid=len(points), gpu=gpu)
    kmeans.train(points)
    centroids = _unit(kmeans.centroids)
    cutoff = float(np.quantile(centroid_distances(points, centroids), 1.0 - config.drop_fraction))
    return centroids, cutoff


def kmeans_on_gpu(device: str) -> bool:
    """Whether faiss can run k-means on a GPU for a run asking for `device` (auto, cpu, cuda): it needs a
    faiss GPU build that sees one. Asking for cuda where it cannot falls back to the CPU, with a warning."""
    if device == "cpu":
        return False
    import faiss

    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if gpus == 0 and device == "cuda":
        log.warning("clean.device=cuda, but faiss sees no GPU (a CPU build of faiss, or no GPU here): "
                    "k-means runs on the CPU; install tagmill[gpu] for faiss on the GPU")
    return gpus > 0


def centroid_distances(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine distance of each embedding to its nearest centroid."""
    return 1.0 - (_unit(embeddings) @ centroids.T).max(axis=1)


def decide(candidates: list[Candidate], statistics: dict[str, TagStatistics], rules: CleanRules) -> list[TagDrop]:
    """The drops among one sample's candidate tags: the first rule that fires is a tag's reason."""
    drops = (_first_drop(c, statistics.get(c.tag, TagStatistics()), rules) for c in candidates)
    return [d for d in drops if d is not None]


def _first_drop(candidate: Candidate, stats: TagStatistics, rules: CleanRules) -> TagDrop | None:
    tag, tagger, clip, outlier = candidate.tag, candidate.tagger, candidate.clip, candidate.outlier
    if rules.support.enabled and candidate.parsed and tagger is not None and candidate.tagger_threshold is not None:
        limit = candidate.tagger_threshold - rules.support.margin
        if tagger < limit:
            return TagDrop(tag, Rule.SUPPORT, tagger, limit)
    if stats.similarity_threshold is not None and clip is not None and clip < stats.similarity_threshold:
        return TagDrop(tag, Rule.SIMILARITY, clip, stats.similarity_threshold)
    if stats.cutoff is not None and outlier is not None and outlier > stats.cutoff:
        return TagDrop(tag, Rule.OUTLIER, outlier, stats.cutoff)
    return None


class TagClusters:
    """Every tag's centroids in one array, so a batch of (image, tag) pairs is scored at once."""

    def __init__(self, statistics: dict[str, TagStatistics]):
        clustered = {tag: s.centroids for tag, s in statistics.items() if s.centroids is not None}
        self.rows = {tag: row for row, tag in enumerate(sorted(clustered))}
        k = max((len(c) for c in clustered.values()), default=1)
        dim = next(iter(clustered.values())).shape[1] if clustered else 1
        self.centroids = np.zeros((len(clustered), k, dim), dtype=np.float32)
        for tag, row in self.rows.items():
            centroids = clustered[tag]
            self.centroids[row] = centroids[np.arange(k) % len(centroids)]  # pad by repeating: max is unchanged

    def distances(self, embeddings: np.ndarray, images: np.ndarray, tags: list[str]) -> np.ndarray:
        """Cosine distance of image `images[i]` to the nearest centroid of `tags[i]`; NaN for unclustered tags."""
        rows = np.array([self.rows.get(tag, -1) for tag in tags], dtype=np.int64)
        found = rows >= 0
        distances = np.full(len(tags), np.nan, dtype=np.float32)
        if found.any():
            points = _unit(embeddings)[images[found]]
            similarity = np.einsum("pd,pkd->pk", points, self.centroids[rows[found]])
            distances[found] = 1.0 - similarity.max(axis=1)
        return distances


def save_statistics(statistics: dict[str, TagStatistics], path: str | Path) -> None:
    """Every tag's threshold, cutoff and centroids in one .npz (the file exists only when whole)."""
    tags = sorted(statistics)
    clusters = TagClusters(statistics)
    arrays = {
        "tags": np.array(tags, dtype=str),
        "similarity_thresholds": np.array([_nan(statistics[t].similarity_threshold) for t in tags], dtype=np.float64),
        "cutoffs": np.array([_nan(statistics[t].cutoff) for t in tags], dtype=np.float64),
        "clustered": np.array(sorted(clusters.rows), dtype=str),
        "centroids": clusters.centroids,
    }
    storage.write_atomic(path, lambda stream: np.savez(stream, **arrays))


def load_statistics(path: str | Path) -> dict[str, TagStatistics]:
    with np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False) as data:
        centroids = {tag: data["centroids"][row] for row, tag in enumerate(data["clustered"].tolist())}
        return {tag: TagStatistics(_none(threshold), centroids.get(tag), _none(cutoff))
                for tag, threshold, cutoff in zip(data["tags"].tolist(), data["similarity_thresholds"], data["cutoffs"])}


def _nan(value: float | None) -> float:
    return np.nan if value is None else value


def _none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
