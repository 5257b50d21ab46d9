"""The tagging model's learning targets on the synthetic world, with wall-clock training time.

    .venv/bin/python benchmarks/bench_learning.py [--work /tmp/bench-learning] [--n 5600] [--set epochs=12]

1. A clean world (no caption noise): train the tiny recipe (configs/train/tiny.yaml) on the parsed
   tags; report its held-out mAP and the wall time of `train` (target: mAP >= 0.95 in <= 3 min on
   the 2-core CPU, >= 5k training images at 64 px).
2. A default-noise world (20% hallucinated, 30% omitted mentions): train on the parsed tags only;
   report the held-out mAP against the world's truth (target: >= 0.85).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from tagmill.engine.synth.world import SynthConfig, synthesize
from tagmill.model.evaluate import evaluate_checkpoint
from tagmill.model.train import load_train_config, train
from tagmill.pipeline.job import run

TINY = Path(__file__).resolve().parents[1] / "configs" / "train" / "tiny.yaml"
NO_NOISE = dict(hallucination=0.0, omission=0.0, wrong_attribute=0.0, negation=0.0)


def learn(work: Path, name: str, n: int, noise: dict, overrides: list[str]) -> dict:
    world, shards, model = work / f"{name}-world", work / f"{name}-run", work / f"{name}-model"
    if not (world / "truth.jsonl").is_file():
        synthesize(world, SynthConfig(n=n, seed=1, **noise))
    if not (shards / "run.json").is_file():
        run(["--input", str(world), "--output", str(shards)])
    config = load_train_config(TINY, ["target_sources=[parsed]", *overrides])
    shutil.rmtree(model, ignore_errors=True)  # train from scratch, not resume
    started = time.perf_counter()
    summary = train(shards, model, config)
    seconds = time.perf_counter() - started
    truth = evaluate_checkpoint(model, shards, world / "truth.jsonl", "holdout")
    return {"world": name, "train_samples": summary["train_samples"], "epochs": config.epochs,
            "train_s": seconds, "holdout_map_parsed": summary["holdout"]["mAP"], "holdout_map_truth": truth["mAP"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/bench-learning", help="worlds, runs and models go here (reused)")
    parser.add_argument("--n", type=int, default=5600, help="samples per world (5% are held out)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    args = parser.parse_args()
    work = Path(args.work)
    for name, noise in (("clean", NO_NOISE), ("noisy", {})):
        result = learn(work, name, args.n, noise, args.set)
        print(f"{result['world']:>5}: {result['train_samples']} training images, {result['epochs']} epochs in "
              f"{result['train_s']:.0f} s; held-out mAP {result['holdout_map_parsed']:.3f} (parsed tags), "
              f"{result['holdout_map_truth']:.3f} (truth)", flush=True)


if __name__ == "__main__":
    main()
