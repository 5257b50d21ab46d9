"""Each cleaning rule on hand-made scores and embeddings with a known answer."""

import numpy as np
import pytest

from tagmill.engine.clean import (Candidate, CleanRules, OutlierRuleConfig, Rule, SimilarityRuleConfig,
                                  SupportRuleConfig, TagClusters, TagStatistics, centroid_distances, decide,
                                  fit_clusters, fit_tag_statistics, sample_priority, similarity_threshold)


def test_fixed_similarity_threshold_is_used_as_given():
    assert similarity_threshold(np.array([0.1, 0.9]), SimilarityRuleConfig(threshold=0.25)) == 0.25


def test_calibrated_threshold_sits_below_the_bulk_and_above_the_stragglers():
    rng = np.random.default_rng(0)
    true = rng.normal(0.30, 0.01, size=200)
    noise = rng.normal(0.10, 0.01, size=20)
    threshold = similarity_threshold(np.concatenate([true, noise]), SimilarityRuleConfig(deviations=3.0))
    assert noise.max() < threshold < true.min()


def test_few_samples_fall_back_to_the_floor():
    config = SimilarityRuleConfig(floor=0.05, min_samples=20)
    assert similarity_threshold(np.array([0.3, 0.31, 0.02]), config) == 0.05


def test_kmeans_cutoff_drops_the_farthest_share():
    rng = np.random.default_rng(1)
    centre = rng.standard_normal(16).astype(np.float32)
    points = centre + 0.05 * rng.standard_normal((200, 16)).astype(np.float32)
    centroids, cutoff = fit_clusters(points, OutlierRuleConfig(clusters=1, drop_fraction=0.1), seed=0)
    distances = centroid_distances(points, centroids)
    assert np.mean(distances > cutoff) == pytest.approx(0.1, abs=0.01)
    stranger = -centre[None, :]  # the opposite direction: as far as cosine distance goes
    assert centroid_distances(stranger, centroids)[0] > 1.5 > cutoff


def test_two_clusters_keep_both_modes():
    rng = np.random.default_rng(2)
    a, b = np.eye(8, dtype=np.float32)[0], np.eye(8, dtype=np.float32)[1]
    points = np.concatenate([a + 0.02 * rng.standard_normal((100, 8)), b + 0.02 * rng.standard_normal((100, 8))])
    centroids, cutoff = fit_clusters(points.astype(np.float32), OutlierRuleConfig(clusters=2), seed=0)
    assert centroid_distances(np.stack([a, b]), centroids).max() < cutoff  # both modes are inliers
    between = (a + b)[None, :]
    assert centroid_distances(between, centroids)[0] > cutoff


def test_tag_clusters_score_pairs_like_the_single_tag_function():
    rng = np.random.default_rng(3)
    rules = CleanRules(outliers=OutlierRuleConfig(clusters=3, min_samples=40))
    samples = {tag: rng.standard_normal((60 + 10 * i, 8)).astype(np.float32) for i, tag in enumerate("abc")}
    statistics = {tag: fit_tag_statistics(np.zeros(len(x)), x, rules) for tag, x in samples.items()}
    statistics["rare"] = fit_tag_statistics(np.zeros(3), samples["a"][:3], rules)  # too few: not clustered
    images = rng.standard_normal((5, 8)).astype(np.float32)
    rows, tags = np.array([0, 1, 2, 3, 4, 4]), ["a", "b", "c", "a", "rare", "c"]
    got = TagClusters(statistics).distances(images, rows, tags)
    for i, (row, tag) in enumerate(zip(rows, tags)):
        if tag == "rare":
            assert np.isnan(got[i])
        else:
            assert got[i] == pytest.approx(centroid_distances(images[row:row + 1], statistics[tag].centroids)[0],
                                           abs=1e-5)


def test_rules_fire_in_order_and_record_score_and_threshold():
    rules = CleanRules(support=SupportRuleConfig(margin=0.05))
    stats = {"cat": TagStatistics(similarity_threshold=0.2, centroids=np.eye(2, dtype=np.float32), cutoff=0.3)}
    candidates = [
        Candidate("cat", parsed=True, tagger=0.4, tagger_threshold=0.6, clip=0.1, outlier=0.9),  # support first
        Candidate("dog", parsed=False, tagger=0.01, tagger_threshold=0.6),  # generated tags: not judged by support
    ]
    drops = decide(candidates, stats, rules)
    assert [(d.tag, d.rule, d.score, d.threshold) for d in drops] == [("cat", Rule.SUPPORT, 0.4, pytest.approx(0.55))]
    just_below = Candidate("cat", True, tagger=0.56, tagger_threshold=0.6, clip=0.5, outlier=0.1)
    assert decide([just_below], stats, rules) == []  # within the margin
    assert decide([Candidate("cat", True, 0.9, 0.6, clip=0.1)], stats, rules)[0].rule == Rule.SIMILARITY
    assert decide([Candidate("cat", True, 0.9, 0.6, clip=0.5, outlier=0.4)], stats, rules)[0].rule == Rule.OUTLIER
    assert decide([Candidate("cat", True, 0.9, 0.6, clip=0.5, outlier=0.1)], stats, rules) == []


def test_switched_off_rules_never_fire():
    rules = CleanRules()
    rules.support.enabled = False
    assert decide([Candidate("cat", parsed=True, tagger=0.0, tagger_threshold=0.5)], {}, rules) == []
    rules.similarity.enabled = rules.outliers.enabled = False
    stats = fit_tag_statistics(np.array([0.1] * 50), np.ones((50, 4), dtype=np.float32), rules)
    assert stats.similarity_threshold is None and stats.centroids is None


def test_sample_priority_is_stable_and_spread():
    assert sample_priority("a", "cat", 0) == sample_priority("a", "cat", 0)
    assert sample_priority("a", "cat", 0) != sample_priority("a", "cat", 1)
    assert len({sample_priority(str(i), "cat", 0) for i in range(1000)}) == 1000


def test_statistics_round_trip_through_their_file(tmp_path):
    from tagmill.engine.clean import load_statistics, save_statistics

    rng = np.random.default_rng(4)
    rules = CleanRules()
    statistics = {"cat": fit_tag_statistics(rng.normal(0.3, 0.02, 80), rng.standard_normal((80, 8)), rules),
                  "rare tag": fit_tag_statistics(np.array([0.2]), rng.standard_normal((1, 8)), rules)}
    save_statistics(statistics, tmp_path / "clean.npz")
    loaded = load_statistics(tmp_path / "clean.npz")
    assert loaded.keys() == statistics.keys()
    assert loaded["cat"].similarity_threshold == pytest.approx(statistics["cat"].similarity_threshold)
    assert loaded["cat"].cutoff == pytest.approx(statistics["cat"].cutoff)
    padded = loaded["cat"].centroids
    assert centroid_distances(padded[:1], statistics["cat"].centroids)[0] == pytest.approx(0.0, abs=1e-6)
    assert loaded["rare tag"].centroids is None and loaded["rare tag"].cutoff is None


def test_kmeans_asks_for_the_gpu_only_where_faiss_has_one(caplog):
    import faiss

    from tagmill.engine.clean import kmeans_on_gpu

    has_gpu = faiss.get_num_gpus() > 0
    assert kmeans_on_gpu("cpu") is False
    assert kmeans_on_gpu("auto") is has_gpu
    with caplog.at_level("WARNING"):
        assert kmeans_on_gpu("cuda") is has_gpu
    assert ("faiss sees no GPU" in caplog.text) is not has_gpu


@pytest.mark.gpu
def test_kmeans_on_the_gpu_finds_the_clusters_the_cpu_finds():
    import faiss

    from tagmill.engine.clean import fit_clusters

    if faiss.get_num_gpus() == 0:
        pytest.skip("a CPU build of faiss (tagmill[gpu] installs one for the GPU)")
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(center, 0.05, (200, 16)) for center in (-1.0, 1.0)]).astype(np.float32)
    config = OutlierRuleConfig(clusters=2, min_samples=10)
    (cpu, cpu_cutoff), (gpu, gpu_cutoff) = (fit_clusters(points, config, 0, gpu) for gpu in (False, True))
    assert np.allclose(np.sort(cpu, axis=0), np.sort(gpu, axis=0), atol=1e-3)
    assert abs(cpu_cutoff - gpu_cutoff) < 1e-3
