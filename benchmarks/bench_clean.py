"""The FAISS part of cleaning: per-tag k-means on bounded samples, then every (image, tag) pair scored.

RAM-sized: 4,585 tags, 512-d embeddings, tags carried by a Zipf-like share of the images. Reports
(image, tag) pairs per second through fitting and scoring, with the tags split over two worker
processes of one faiss thread each (the two cores),
the peak memory at two dataset sizes (it should not grow with the dataset), and faiss's k-means
speed against scikit-learn's on the same tags, measured in the same run.

    .venv/bin/python benchmarks/bench_clean.py [--pairs 2000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from tagmill.engine.clean import CleanRules, TagClusters, fit_clusters, fit_tag_statistics


def main() -> None:
    args = _arguments()
    if args.measure:
        print(json.dumps(measure(args)))
        return
    small = _measure_in_subprocess(args, args.pairs // 4)
    large = _measure_in_subprocess(args, args.pairs)
    print(f"{args.tags} tags, {args.dim}-d, at most {args.sample_per_tag} samples per tag")
    for result in (small, large):
        print(f"  {result['pairs']:>9,} pairs: fit {result['fit_s']:.1f} s + score {result['score_s']:.1f} s "
              f"= {result['pairs_per_s']:,.0f} pairs/s, peak RSS {result['peak_rss_mb']:.0f} MB")
    print(f"peak RSS ratio {args.pairs:,} / {args.pairs // 4:,} pairs: "
          f"{large['peak_rss_mb'] / small['peak_rss_mb']:.3f}")
    faiss_s, sklearn_s = compare_kmeans(args)
    print(f"k-means on 100 tags' samples: faiss {faiss_s:.2f} s, scikit-learn {sklearn_s:.2f} s "
          f"({sklearn_s / faiss_s:.1f}x)")


def measure(args: argparse.Namespace) -> dict:
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    shares = _tag_shares(args.tags)
    centers = rng.standard_normal((args.tags, 4, args.dim), dtype=np.float32)
    rules = CleanRules(sample_per_tag=args.sample_per_tag)
    statistics = {}
    fitting = 0.0
    for tag in range(args.part, args.tags, args.parts):  # each process fits its share of the tags
        count = min(int(shares[tag] * args.pairs), args.sample_per_tag)
        sample = _embeddings(rng, centers[tag], count)
        similarities = sample @ centers[tag, 0] / args.dim
        tick = time.perf_counter()
        statistics[str(tag)] = fit_tag_statistics(similarities, sample, rules)
        fitting += time.perf_counter() - tick
    clusters = TagClusters(statistics)
    scoring, scored = 0.0, 0
    while scored < args.pairs // args.parts:
        images = args.batch
        tags = rng.choice(args.tags, size=images * args.tags_per_image, p=shares)
        tags = tags[tags % args.parts == args.part]  # the pairs of this process's tags
        embeddings = rng.standard_normal((images, args.dim), dtype=np.float32)
        rows = rng.integers(0, images, size=len(tags))
        tick = time.perf_counter()
        clusters.distances(embeddings, rows, [str(t) for t in tags])
        scoring += time.perf_counter() - tick
        scored += len(tags)
    return {"pairs": scored, "fit_s": fitting, "score_s": scoring,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def compare_kmeans(args: argparse.Namespace) -> tuple[float, float]:
    """Seconds to fit the same 100 tags' samples with faiss and with scikit-learn."""
    import faiss
    from sklearn.cluster import KMeans

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(1)
    config = CleanRules().outliers
    samples = [_embeddings(rng, rng.standard_normal((4, args.dim), dtype=np.float32), args.sample_per_tag)
               for _ in range(100)]
    tick = time.perf_counter()
    for sample in samples:
        fit_clusters(sample, config, seed=0)
    faiss_s = time.perf_counter() - tick
    tick = time.perf_counter()
    for sample in samples:
        KMeans(config.clusters, n_init=1, max_iter=config.iterations, random_state=0).fit(sample)
    return faiss_s, time.perf_counter() - tick


def _tag_shares(tags: int) -> np.ndarray:
    """How many of the (image, tag) pairs each tag has: a Zipf-like long tail, as in real tag data."""
    weights = 1.0 / np.arange(1, tags + 1) ** 0.8
    return weights / weights.sum()


def _embeddings(rng: np.random.Generator, centers: np.ndarray, count: int) -> np.ndarray:
    picks = rng.integers(0, len(centers), size=count)
    return centers[picks] + 0.5 * rng.standard_normal((count, centers.shape[1]), dtype=np.float32)


def _measure_in_subprocess(args: argparse.Namespace, pairs: int) -> dict:
    """Both cores at work, as two workers would split the tags; pairs/s over the slower one's time."""
    command = [sys.executable, __file__, "--measure", "--pairs", str(pairs), "--tags", str(args.tags),
               "--dim", str(args.dim), "--sample-per-tag", str(args.sample_per_tag), "--parts", str(args.parts)]
    workers = [subprocess.Popen(command + ["--part", str(part)], stdout=subprocess.PIPE, text=True)
               for part in range(args.parts)]
    results = [json.loads(worker.communicate()[0]) for worker in workers]
    seconds = max(r["fit_s"] + r["score_s"] for r in results)
    return {"pairs": sum(r["pairs"] for r in results), "fit_s": max(r["fit_s"] for r in results),
            "score_s": max(r["score_s"] for r in results), "pairs_per_s": sum(r["pairs"] for r in results) / seconds,
            "peak_rss_mb": sum(r["peak_rss_mb"] for r in results)}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=2_000_000, help="(image, tag) pairs in the large run")
    parser.add_argument("--tags", type=int, default=4585)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--sample-per-tag", type=int, default=1000)
    parser.add_argument("--tags-per-image", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1024, help="images scored at once")
    parser.add_argument("--parts", type=int, default=2, help="worker processes sharing the tags")
    parser.add_argument("--part", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    main()
