"""`tagmill rounds`: bootstrapped rounds of the engine, each round's cleaned shards training the next tagger.

Round 0 parses (and cleans with what it has: CLIP rules when a CLIP is configured, the tagger's
support when `run.generate.model` names a starting tagger), then trains. Round k >= 1 parses,
generates with round k-1's tagger, cleans, and trains. Everything of round k lives in
`WORK/round-K/` (the run's shards, rejects, reports and resolved config, and `model/`), and a rerun
skips the steps already complete, so an interrupted command continues where it stopped.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from tagmill.engine import storage
from tagmill.engine.config import (
    SHIPPED_CONFIGS, RunConfig, apply_overrides, build_dataclass, config_file, read_mapping, validate,
)
from tagmill.model.train import DEFAULT_TRAIN_CONFIG, TrainConfig
from tagmill.pipeline.job import RunError, check_truth_file, input_folder, run_job, write_report

ROUNDS_JSON = "rounds.json"
ROUNDS_CONFIG = "rounds.yaml"
MODEL = "model"
log = logging.getLogger(__name__)


@dataclass
class WarmStartConfig:
    """Round k >= 1's tagger continues from round k-1's weights instead of starting from scratch."""

    enabled: bool = False
    epochs: int | None = None  # epochs of a warm-started round; null: train.epochs
    lr: float | None = None  # its peak learning rate; null: train.lr


@dataclass
class RoundsConfig:
    run: RunConfig = field(default_factory=RunConfig)  # every round's run; generate.model is the previous tagger
    train: TrainConfig = field(default_factory=TrainConfig)  # every round's tagger training
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)


def load_rounds_config(path: str | Path | None, overrides: list[str] = ()) -> RoundsConfig:
    """A rounds config file with `a.b=value` overrides.

    Its sections `run` and `train` hold what run and training configs hold; a section's `from: FILE`
    (relative to the rounds config) starts it from that config file, its other keys override the file's.
    """
    folder = storage.parent(config_file(path)) if path else str(SHIPPED_CONFIGS)
    data = read_mapping(path) if path else {}
    data.setdefault("train", {"from": str(DEFAULT_TRAIN_CONFIG)})
    for name in ("run", "train"):
        if isinstance(data.get(name), dict) and "from" in data[name]:
            data[name] = _from_file(data[name], folder)
    return build_dataclass(RoundsConfig, apply_overrides(data, overrides))


def _from_file(section: dict, folder: str) -> dict:
    settings = dict(section)
    start = str(settings.pop("from"))
    whole = storage.is_url(start) or os.path.isabs(start)  # else relative to the rounds config's folder
    base = read_mapping(start if whole else storage.join(folder, start))
    return _merged(base, settings)


def _merged(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        both_sections = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both_sections else value
    return merged


def round_run_config(config: RoundsConfig, previous_model: str | None) -> RunConfig:
    """The run config of one round: generate with the previous round's tagger, clean with what there is."""
    run = copy.deepcopy(config.run)
    if previous_model is not None:
        run.generate.model = previous_model
    stages = [s for s in run.stages if s != "generate" or run.generate.model]
    if not run.generate.model and not run.clean.rules.uses_clip:
        stages = [s for s in stages if s != "clean"]  # nothing to clean with: no tagger, no CLIP rule
    run.stages = stages
    validate(run)
    return run


def run_rounds(config: RoundsConfig, input_path: str, work: str | Path, rounds: int,
               truth: str | None = None) -> list[dict]:
    """Rounds 0..`rounds` into `work`; returns (and writes to rounds.json) one summary per round."""
    if rounds < 0:
        raise ValueError(f"--rounds must be 0 or more, not {rounds}")
    check_truth_file(truth)
    truth = truth or _truth_beside(input_path)
    work = str(work) if storage.is_url(work) else str(Path(work).resolve())  # a round's config records absolute paths
    storage.makedirs(work)
    storage.write_text(storage.join(work, ROUNDS_CONFIG), yaml.safe_dump(asdict(config), sort_keys=False))
    history: list[dict] = []
    previous: str | None = None
    for number in range(rounds + 1):
        folder = storage.join(work, f"round-{number}")
        run_config = round_run_config(config, previous)
        _run_step(run_config, input_path, folder, truth)
        model = _train_step(config, folder, previous)
        history.append(round_summary(number, folder, truth))
        _write_history(work, history)
        previous = model
    return history


def _truth_beside(input_path: str) -> str | None:
    """The input folder's truth.jsonl (the synthetic world writes one), when there is one."""
    found = storage.join(input_folder(input_path), "truth.jsonl")
    return found if storage.is_file(found) else None


def _run_step(config: RunConfig, input_path: str, folder: str, truth: str | None) -> None:
    """The round's pipeline run; a run that completed is only checked, a partial one resumes."""
    try:
        summary = run_job(config, input_path, folder)
    except RunError as err:
        raise ValueError(f"{storage.name(folder)}: {err}") from None
    if summary["shards_skipped_as_complete"] < summary["shards"] or not storage.is_file(storage.join(folder, "report.json")):
        write_report(folder, truth)


def _train_step(config: RoundsConfig, folder: str, previous: str | None) -> str:
    """The round's tagger, trained on the round's final tags, unless it is already trained."""
    from tagmill.model.train import train

    model = storage.join(folder, MODEL)
    if storage.is_file(storage.join(model, "train.json")):
        log.warning("%s: model trained, skipped", storage.name(folder))
        return model
    train(folder, model, round_train_config(config, previous))
    return model


def round_train_config(config: RoundsConfig, previous_model: str | None) -> TrainConfig:
    """The training config of one round: on the round's final tags, warm-started when configured."""
    train_config = copy.deepcopy(config.train)
    train_config.target_sources = []  # the round's final tags: parsed + generated - dropped
    warm = config.warm_start
    if warm.enabled and previous_model is not None:
        train_config.init_from = previous_model
        train_config.epochs = warm.epochs if warm.epochs is not None else train_config.epochs
        train_config.lr = warm.lr if warm.lr is not None else train_config.lr
    return train_config


def round_summary(number: int, folder: str, truth: str | None) -> dict:
    """One round's figures for rounds.json, from what the round wrote."""
    report = json.loads(storage.read_text(storage.join(folder, "report.json")))
    trained = json.loads(storage.read_text(storage.join(folder, MODEL, "train.json")))
    summary = {"round": number, "folder": storage.name(folder), "stages": report["stages"], "samples": report["samples"],
               "tags_per_sample": report["tags_per_sample"], "drops_by_rule": report["drops_by_rule"],
               "model_map": round(trained["holdout"]["mAP"], 4), "model_train_samples": trained["train_samples"]}
    if truth:
        summary["model_map_truth"] = _holdout_map_against_truth(folder, truth)
        stages = report.get("truth_metrics", {})
        if stages:
            summary["truth_metrics"] = {k: v for k, v in stages["cleaned"].items() if k != "samples"}
            summary["truth_metrics_by_stage"] = {s: {k: v for k, v in m.items() if k != "samples"}
                                                 for s, m in stages.items() if s in _stages_run(report)}
    return summary


def _stages_run(report: dict) -> set[str]:
    ran = set(report["stages"])
    return {"parsed"} | ({"generated"} if "generate" in ran else set()) | ({"cleaned"} if "clean" in ran else set())


def _holdout_map_against_truth(folder: str, truth: str) -> float:
    """The round's tagger on its held-out split, scored against the truth rather than the round's tags."""
    from tagmill.model.evaluate import evaluate_checkpoint

    cached = storage.join(folder, MODEL, "truth_eval.json")
    if not storage.is_file(cached):
        result = evaluate_checkpoint(storage.join(folder, MODEL), folder, truth, "holdout")
        storage.write_text(cached, json.dumps({k: v for k, v in result.items() if k != "per_tag"}, indent=1) + "\n")
    return round(json.loads(storage.read_text(cached))["mAP"], 4)


def _write_history(work: str, history: list[dict]) -> None:
    from tagmill.engine.report.rounds_page import write_rounds_page

    storage.write_text(storage.join(work, ROUNDS_JSON), json.dumps(history, indent=1) + "\n")
    write_rounds_page(history, work)


def format_rounds(history: list[dict]) -> str:
    """rounds.json as a short text table: one line per round."""
    lines = [f"{'round':>5}  {'tags/sample':>11}  {'dropped':>7}  {'model mAP':>9}  {'vs truth':>8}  "
             f"{'precision':>9}  {'recall':>6}  {'F1':>5}"]
    for entry in history:
        truth = entry.get("truth_metrics", {})
        lines.append(f"{entry['round']:>5}  {entry['tags_per_sample']['cleaned']:>11.2f}  "
                     f"{sum(entry['drops_by_rule'].values()):>7}  {entry['model_map']:>9.3f}  "
                     f"{_figure(entry.get('model_map_truth')):>8}  {_figure(truth.get('precision')):>9}  "
                     f"{_figure(truth.get('recall')):>6}  {_figure(truth.get('f1')):>5}")
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
