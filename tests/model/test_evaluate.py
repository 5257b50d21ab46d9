"""Scoring: threshold calibration, mAP/F1 on hand-computed cases, predictions over a loader."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model_helpers import build_tagger, jpeg_bytes, one_torch_thread, shard_json, write_tar  # noqa: F401
from tagmill.model.data import SampleDecoder, make_loader
from tagmill.model.evaluate import calibrate_thresholds, mean_average_precision, predict, tag_metrics

# ---- calibrate_thresholds ------------------------------------------------------------------

def _columns(*columns) -> np.ndarray:
    return np.array(columns, dtype=float).T


def test_calibration_picks_the_threshold_of_best_f1():
    scores = _columns([0.1, 0.2, 0.6, 0.7, 0.8])
    targets = _columns([0, 0, 1, 1, 1])
    thresholds = calibrate_thresholds(scores, targets, default=0.5, min_support=3)
    assert thresholds.tolist() == pytest.approx([0.6])


def test_calibration_trades_precision_for_recall_at_best_f1():
    # at 0.4: P=3/4, R=3/3 (F1 .857); at 0.5: P=2/3, R=2/3; at 0.7: P=2/2, R=2/3 (F1 .8)
    scores = _columns([0.1, 0.5, 0.4, 0.7, 0.9])
    targets = _columns([0, 0, 1, 1, 1])
    assert calibrate_thresholds(scores, targets, 0.5, min_support=3).tolist() == pytest.approx([0.4])


def test_tags_with_too_few_positives_keep_the_default_and_others_stay_in_bounds():
    scores = _columns(
        [0.1, 0.2, 0.6, 0.7, 0.8],  # best 0.6
        [0.1, 0.2, 0.6, 0.7, 0.8],  # two positives only: keeps the default
        [0.96, 0.97, 0.98, 0.99, 0.995],  # best 0.98, clipped to 0.95
        [0.001, 0.002, 0.01, 0.02, 0.03],  # best 0.01, clipped to 0.05
        [0.3, 0.4, 0.5, 0.6, 0.7],  # no positives at all
    )
    targets = _columns([0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0])
    thresholds = calibrate_thresholds(scores, targets, default=0.42, min_support=3, bounds=(0.05, 0.95))
    assert thresholds.dtype == np.float32
    assert thresholds.tolist() == pytest.approx([0.6, 0.42, 0.95, 0.05, 0.42])


def _captioned_scores(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """400 images without the tag and 100 with it, scored in two modes (logits -2 and 2); the
    captions omit the 30 least clear of the 100, as a tagger trained on them would score them."""
    rng = np.random.default_rng(seed)
    absent, present = np.sort(rng.normal(-2, 0.5, 400)), np.sort(rng.normal(2, 0.5, 100))
    scores = 1 / (1 + np.exp(-np.concatenate([absent, present])))
    truth = np.concatenate([np.zeros(400), np.ones(100)])
    captioned = truth.copy()
    captioned[400:430] = 0
    return scores.astype(np.float32)[:, None], captioned[:, None], truth  # float32, as a tagger scores


def test_best_f1_against_captions_that_omit_climbs_into_the_present_mode():
    scores, captioned, truth = _captioned_scores()
    threshold = calibrate_thresholds(scores, captioned, 0.5, method="f1")[0]
    assert np.mean(scores[truth == 1, 0] >= threshold) == pytest.approx(0.7)  # the omitted 30 are dropped


def test_the_mixture_threshold_sits_in_the_valley_whatever_the_captions_omit():
    scores, captioned, truth = _captioned_scores()
    threshold = calibrate_thresholds(scores, captioned, 0.5, method="mixture")[0]
    # equal posteriors of N(-2, .5) weighted 4 and N(2, .5) weighted 1: logit ln(4) / 16
    assert threshold == pytest.approx(1 / (1 + np.exp(-np.log(4) / 16)), abs=0.03)
    assert np.mean(scores[truth == 1, 0] >= threshold) == 1.0
    assert np.mean(scores[truth == 0, 0] >= threshold) == 0.0
    assert calibrate_thresholds(scores, truth[:, None], 0.5, method="mixture")[0] == threshold  # labels unread


def _overlapping_modes() -> tuple[np.ndarray, np.ndarray]:
    """Logits N(-0.5, 1) without the tag and N(0.5, 1) with it: Ashman's D of 1, no clear valley."""
    rng = np.random.default_rng(1)
    logits = np.concatenate([rng.normal(-0.5, 1, 300), rng.normal(0.5, 1, 300)])
    return (1 / (1 + np.exp(-logits)))[:, None], np.repeat([0.0, 1.0], 300)[:, None]


@pytest.mark.parametrize("scores, targets", [(_columns([0.7, 0.7, 0.7, 0.7]), _columns([0, 1, 1, 1])),
                                             _overlapping_modes()], ids=["one value", "overlapping modes"])
def test_the_mixture_keeps_best_f1_where_the_scores_part_into_no_two_modes(scores, targets):
    assert calibrate_thresholds(scores, targets, 0.5, min_support=3, method="mixture").tolist() == \
        pytest.approx(calibrate_thresholds(scores, targets, 0.5, min_support=3, method="f1").tolist())


def test_an_unknown_threshold_method_is_refused():
    with pytest.raises(ValueError, match="threshold method must be one of"):
        calibrate_thresholds(_columns([0.5]), _columns([1]), 0.5, method="otsu")


def test_calibration_of_no_samples_keeps_every_default():
    thresholds = calibrate_thresholds(np.zeros((0, 3)), np.zeros((0, 3)), default=0.5)
    assert thresholds.tolist() == [0.5, 0.5, 0.5]


# ---- metrics -------------------------------------------------------------------------------

SCORES = np.array([
    [0.9, 0.2, 0.10],
    [0.8, 0.7, 0.30],
    [0.3, 0.6, 0.20],
    [0.1, 0.4, 0.05],
])
TARGETS = np.array([
    [1, 0, 0],
    [1, 1, 0],
    [0, 0, 0],
    [0, 1, 0],
])
THRESHOLDS = np.array([0.5, 0.65, 0.25])


def test_tag_metrics_on_a_hand_computed_case():
    # a: predicted on samples 0,1 (both right): P=R=F1=1, AP=1
    # b: predicted on sample 1 only (right; sample 3 missed): P=1, R=1/2, F1=2/3;
    #    ranked 0.7(+) 0.6(-) 0.4(+) 0.2(-): AP = (1/1 + 2/3) / 2 = 5/6
    # c: no positives, one false positive (0.30 >= 0.25): counts in micro precision, not in mAP/macro F1
    metrics = tag_metrics(SCORES, TARGETS, THRESHOLDS, ["a", "b", "c"])
    assert metrics["mAP"] == pytest.approx((1 + 5 / 6) / 2)
    assert metrics["precision"] == pytest.approx(3 / 4)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["micro_f1"] == pytest.approx(3 / 4)
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["samples"] == 4
    a, b, c = metrics["per_tag"]
    assert a == {"tag": "a", "ap": pytest.approx(1.0), "precision": 1.0, "recall": 1.0, "f1": 1.0,
                 "support": 2, "predicted": 2, "threshold": 0.5}
    assert b == {"tag": "b", "ap": pytest.approx(5 / 6), "precision": 1.0, "recall": 0.5,
                 "f1": pytest.approx(2 / 3), "support": 2, "predicted": 1, "threshold": 0.65}
    assert c["tag"] == "c" and math.isnan(c["ap"])
    assert (c["precision"], c["recall"], c["f1"], c["support"], c["predicted"]) == (0.0, 0.0, 0.0, 0, 1)


def test_tag_metrics_without_false_positives_on_the_empty_tag():
    metrics = tag_metrics(SCORES, TARGETS, np.array([0.5, 0.65, 0.5]), ["a", "b", "c"])
    assert metrics["precision"] == pytest.approx(1.0)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["micro_f1"] == pytest.approx(2 * 0.75 / 1.75)


def test_mean_average_precision_ignores_tags_without_positives():
    only_present = mean_average_precision(SCORES[:, :2], TARGETS[:, :2])
    assert mean_average_precision(SCORES, TARGETS) == pytest.approx(only_present)
    assert only_present == pytest.approx((1 + 5 / 6) / 2)


def test_mean_average_precision_of_no_positives_is_nan():
    assert math.isnan(mean_average_precision(SCORES, np.zeros_like(TARGETS)))


def test_metrics_of_no_samples_do_not_crash():
    metrics = tag_metrics(np.zeros((0, 2)), np.zeros((0, 2)), np.array([0.5, 0.5]), ["a", "b"])
    assert metrics["samples"] == 0 and math.isnan(metrics["mAP"]) and math.isnan(metrics["macro_f1"])
    assert metrics["micro_f1"] == 0.0


# ---- predict -------------------------------------------------------------------------------

def test_predict_scores_every_decodable_sample(tmp_path):
    tags = ["red", "circle", "beach"]
    members = {}
    for index in range(5):
        members[f"{index:03d}.jpg"] = jpeg_bytes(color=(200, 20 * index, 0))
        members[f"{index:03d}.json"] = shard_json(tags[: 1 + index % 3])
    members["002.jpg"] = b"not a jpeg"
    shard = write_tar(tmp_path / "00000.tar", members)
    model = build_tagger("tiny", num_tags=3)
    decoder = SampleDecoder({t: i for i, t in enumerate(tags)}, 32, [0.5] * 3, [0.5] * 3)
    found = predict(model, make_loader([str(shard)], decoder, 2, "all", 0.0), torch.device("cpu"))
    assert not model.training
    assert found.keys == ["000", "001", "003", "004"]
    assert found.scores.shape == found.targets.shape == (4, 3)
    assert ((found.scores > 0) & (found.scores < 1)).all()
    assert found.targets.tolist() == [[1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0]]
