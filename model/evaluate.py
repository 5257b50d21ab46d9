"""Scoring a tagger: predictions over a loader, mAP/F1 metrics, and per-tag threshold calibration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit, logit
from sklearn.metrics import average_precision_score, precision_recall_curve
from sklearn.mixture import GaussianMixture

from tagmill.engine.report.audit import read_truth
from tagmill.model.data import iterate_batches


@dataclass
class Predictions:
    scores: np.ndarray  # (samples, tags), sigmoid probabilities
    targets: np.ndarray  # (samples, tags), 0/1
    keys: list[str]
    skipped: int  # samples that could not be decoded


@torch.no_grad()
def predict(model: torch.nn.Module, loader, device: torch.device, autocast: bool = False) -> Predictions:
    model.eval()
    scores, targets, keys, skipped = [], [], [], 0
    for batch in iterate_batches(loader):
        skipped += batch.skipped
        if not batch.keys:
            continue
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(batch.images.to(device, non_blocking=True))
        scores.append(torch.sigmoid(logits.float()).cpu().numpy())
        targets.append(batch.targets.numpy())
        keys.extend(batch.keys)
    if not keys:
        return Predictions(np.zeros((0, model.num_tags)), np.zeros((0, model.num_tags)), [], skipped)
    return Predictions(np.concatenate(scores), np.concatenate(targets), keys, skipped)


def merge_predictions(parts: list[Predictions]) -> Predictions:
    """Predictions on several processes' samples as one, in key order, whatever the processes were."""
    keys = [key for part in parts for key in part.keys]
    order = np.argsort(np.array(keys, dtype=str), kind="stable")
    return Predictions(np.concatenate([part.scores for part in parts])[order],
                       np.concatenate([part.targets for part in parts])[order], [keys[i] for i in order],
                       sum(part.skipped for part in parts))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over tags with at least one positive of their average precision."""
    present = targets.sum(axis=0) > 0
    if not present.any():
        return float("nan")
    return float(average_precision_score(targets[:, present], scores[:, present], average="macro"))


def tag_metrics(scores: np.ndarray, targets: np.ndarray, thresholds: np.ndarray, tags: list[str]) -> dict:
    """mAP, micro/macro F1, micro precision and recall at the given thresholds, and a per-tag table."""
    predicted = scores >= thresholds[None, :]
    true_pos = (predicted & (targets > 0)).sum(axis=0)
    pred_pos = predicted.sum(axis=0)
    real_pos = (targets > 0).sum(axis=0)
    precision = _ratio(true_pos.sum(), pred_pos.sum())
    recall = _ratio(true_pos.sum(), real_pos.sum())
    per_tag = [_tag_row(tags[i], scores[:, i], targets[:, i], true_pos[i], pred_pos[i], real_pos[i], thresholds[i])
               for i in range(len(tags))]
    with_support = [row["f1"] for row in per_tag if row["support"] > 0]
    return {"mAP": mean_average_precision(scores, targets), "micro_f1": _f1(precision, recall),
            "macro_f1": float(np.mean(with_support)) if with_support else float("nan"),
            "precision": precision, "recall": recall, "samples": int(len(scores)), "per_tag": per_tag}


def _tag_row(tag, scores, targets, true_pos, pred_pos, real_pos, threshold) -> dict:
    precision, recall = _ratio(true_pos, pred_pos), _ratio(true_pos, real_pos)
    ap = float(average_precision_score(targets, scores)) if real_pos > 0 else float("nan")
    return {"tag": tag, "ap": ap, "precision": precision, "recall": recall, "f1": _f1(precision, recall),
            "support": int(real_pos), "predicted": int(pred_pos), "threshold": float(threshold)}


THRESHOLD_METHODS = ("f1", "mixture")


def calibrate_thresholds(scores: np.ndarray, targets: np.ndarray, default: float | np.ndarray, min_support: int = 5,
                         bounds: tuple[float, float] = (0.05, 0.95), method: str = "f1") -> np.ndarray:
    """Per tag, a threshold from held-out data; tags with fewer than `min_support` positives keep
    `default` (one for all tags, or one per tag), and every threshold stays within `bounds`.

    `f1`: the threshold of best F1 against the held-out tags. `mixture`: the valley between the
    tagger's two modes of scores for the tag, which reads no labels; when the tags come from
    captions that omit what they show, best F1 against them climbs into the present mode. A tag
    whose scores do not part into two clear modes keeps best F1."""
    if method not in THRESHOLD_METHODS:
        raise ValueError(f"threshold method must be one of {THRESHOLD_METHODS}, not {method!r}")
    fit = _best_f1_threshold if method == "f1" else _mixture_threshold
    thresholds = np.array(np.broadcast_to(np.asarray(default, dtype=np.float32), scores.shape[1:]))
    for i in range(scores.shape[1]):
        if targets[:, i].sum() >= min_support:
            thresholds[i] = np.clip(fit(scores[:, i], targets[:, i]), *bounds)
    return thresholds


def _best_f1_threshold(scores: np.ndarray, targets: np.ndarray) -> float:
    precision, recall, candidates = precision_recall_curve(targets, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(candidates[int(np.argmax(f1))])


MIN_SEPARATION = 2.0  # Ashman's D past which two Gaussian components are cleanly apart


def _mixture_threshold(scores: np.ndarray, targets: np.ndarray) -> float:
    """Where a two-component Gaussian mixture over the scores' logits turns from the absent
    component to the present one; best F1 when the two components are not cleanly apart, as a
    briefly trained tagger's scores for a hard tag are not."""
    logits = logit(np.clip(scores, 1e-6, 1 - 1e-6)).astype(np.float64)[:, None]
    if np.ptp(logits) < 1e-6:
        return _best_f1_threshold(scores, targets)
    mixture = GaussianMixture(2, random_state=0).fit(logits)
    means, variances = mixture.means_.ravel(), mixture.covariances_.ravel()
    if abs(means[1] - means[0]) * np.sqrt(2 / variances.sum()) < MIN_SEPARATION:
        return _best_f1_threshold(scores, targets)
    absent, present = np.argsort(means)
    grid = np.linspace(means[absent], means[present], 1001)[:, None]
    crossing = np.flatnonzero(mixture.predict_proba(grid)[:, present] >= 0.5)
    return float(expit(grid[crossing[0], 0])) if crossing.size else _best_f1_threshold(scores, targets)


def _ratio(a, b) -> float:
    return float(a) / float(b) if b else 0.0


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def evaluate_checkpoint(model_dir: str, shards: str, truth: str | None = None, split: str = "all",
                        holdout: float = 0.1, batch_size: int = 128, workers: int = 0) -> dict:
    """Metrics of a saved model (trained, or an imported RAM, RAM++ or Tag2Text) on shards, against the
    shards' own tags or a truth.jsonl.

    Only the model's tags the run's vocabulary maps onto (by name, then by the run's synonyms) are
    scored, under the run's names; the others are counted in `unmatched_model_tags`. The held-out
    share is the one the model was trained with, when its checkpoint records it.
    """
    from tagmill.engine.merge import match_tags
    from tagmill.model.checkpoint import load_model, read_meta
    from tagmill.model.data import make_loader, shard_paths
    from tagmill.model.factory import sample_decoder
    from tagmill.model.vocabulary import shard_synonyms, shard_vocabulary

    model, model_tags = load_model(model_dir)
    truth_tags = read_truth(truth) if truth else None  # a broken file fails before any scoring
    holdout = read_meta(model_dir).get("train", {}).get("config", {}).get("holdout", holdout)
    paths = shard_paths(shards)
    match = match_tags(model_tags, shard_vocabulary(paths), shard_synonyms(paths))
    if not match.columns:
        raise ValueError(f"the model's {len(model_tags)} tags share none with the vocabulary of {shards}")
    tags, columns = map(list, zip(*sorted(match.columns.items(), key=lambda item: item[1])))
    loader = make_loader(paths, sample_decoder(model.config, tags), batch_size, split, holdout, workers)
    found = predict(model, loader, torch.device("cpu"))
    found.scores = found.scores[:, columns]
    if truth_tags is not None:
        found = _against_truth(found, truth_tags, truth, tags)
    result = tag_metrics(found.scores, found.targets, model.thresholds.numpy()[columns], tags)
    result.update(skipped_samples=found.skipped, unmatched_model_tags=len(match.model_only))
    return result


def _against_truth(found: Predictions, truth: dict[str, set[str]], truth_path: str, tags: list[str]) -> Predictions:
    index = {t: i for i, t in enumerate(tags)}
    if not any(tag in index for row in truth.values() for tag in row):
        raise ValueError(f"none of the tags in {truth_path} is in the model's vocabulary")
    rows = [i for i, key in enumerate(found.keys) if key in truth]
    targets = np.zeros((len(rows), len(tags)), dtype=np.float32)
    for row, i in enumerate(rows):
        for tag in truth[found.keys[i]]:
            if tag in index:
                targets[row, index[tag]] = 1.0
    return Predictions(found.scores[rows], targets, [found.keys[i] for i in rows], found.skipped)
