"""Benchmark: parse-only `tagmill run` against a plain Python loop doing the same work, and its memory.

    python benchmarks/bench_pipeline.py [--work DIR] [--n 100000] [--small 10000] [--workers 1] [--repeat 3]

Targets (issue "Foundation"): the run takes at most 1.3x the plain loop's time over the same input,
in the same benchmark run; peak RSS grows at most 1.2x from `--small` to `--n` samples.

Lean workers (issue "cluster scale"): a parse-only run loads nothing of the model stack, so its
peak RSS is at most 500 MB, and its time from start to the first shard written is at most half
that of the same run in a process that loads the model stack first (torch, through Beam's
RunInference, webdataset and spaCy's thinc, as every parse-only run did before), measured on the
`--small` input in the same benchmark run. `--before-tree DIR` (a checkout of an earlier commit, e.g.
`git worktree add /tmp/before COMMIT`) also measures that code's parse-only run on the small input.

The plain loop uses the same library functions in one process with no Beam: plan the input (which
also finds duplicate ids), read each shard, check each image, parse the captions, write the shard.
Both write byte-identical shards (checked). Both run as fresh processes, timed from start to exit,
with their peak resident memory (summed over the process tree) sampled every 20 ms. Each command runs
`--repeat` times, all commands taking turns, and the medians are compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TARGET_TIME_RATIO = 1.3
TARGET_RSS_RATIO = 1.2
TARGET_LEAN_RSS_MB = 500
TARGET_FIRST_SHARD_RATIO = 0.5
# The model stack as parse-only runs loaded it before: Beam's RunInference, webdataset and thinc import torch.
WITH_MODEL_STACK = ("import sys, torch, webdataset, apache_beam.ml.inference.base; "
                    "from tagmill.pipeline.cli import main; sys.exit(main())")


def main() -> None:
    args = _arguments()
    if args.loop:
        _plain_loop(*args.loop)
        return
    work = Path(args.work)
    world = _world(work / "world", args.n, args.shard_size)
    small_input = _small_input(world, work / "world-small", args.small // args.shard_size)
    commands = {
        "loop": ([sys.executable, __file__, "--loop", str(world), str(work / "loop")], work / "loop", None),
        "run": (_run_command(world, work / "run", args.workers), work / "run", None),
        "run_small": (_run_command(small_input, work / "run-small", args.workers), work / "run-small", None),
        "run_small_model_stack": (_run_command(small_input, work / "run-small-stack", args.workers, model_stack=True),
                                  work / "run-small-stack", None),
    }
    if args.before_tree:
        env = {"PYTHONPATH": str(_package_view(Path(args.before_tree), work / "before-package"))}
        command = [sys.executable, "-m", "tagmill.pipeline.cli", *_run_command(small_input, work / "run-small-before",
                                                                              args.workers)[1:]]
        commands["run_small_before"] = (command, work / "run-small-before", env)
    results = {"n": args.n, "small": args.small, "workers": args.workers, "repeat": args.repeat,
               **_measure_interleaved(commands, args.repeat)}
    results["identical_shards"] = _digests(work / "loop") == _digests(work / "run" / "shards")
    results["time_ratio"] = round(results["run"]["seconds"] / results["loop"]["seconds"], 3)
    results["rss_ratio"] = round(results["run"]["peak_rss_mb"] / results["run_small"]["peak_rss_mb"], 3)
    results["first_shard_ratio"] = round(results["run_small"]["first_shard_s"]
                                         / results["run_small_model_stack"]["first_shard_s"], 3)
    _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="/tmp/tagmill-bench-pipeline", help="scratch folder (worlds are reused)")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="runner.workers for tagmill run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command, taking turns; medians are reported")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--before-tree", help="a checkout of an earlier commit to measure on the small input too")
    parser.add_argument("--loop", nargs=2, metavar=("INPUT", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _world(folder: Path, n: int, shard_size: int) -> Path:
    """The default-noise synthetic world, made once and reused by later runs."""
    truth = folder / "truth.jsonl"
    if not truth.exists() or sum(1 for _ in open(truth)) != n:
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([_tagmill(), "synth", "--out", str(folder), "--n", str(n), "--seed", "0",
                        "--shard-size", str(shard_size)], check=True)
    return folder


def _small_input(world: Path, folder: Path, shards: int) -> Path:
    """The first shards of the world, with its vocabulary, as a smaller input."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in [p.name for p in sorted(world.glob("*.tar"))[:shards]] + ["tags.txt", "synonyms.json"]:
        target = folder / name
        if not target.exists():
            os.link(world / name, target)
    return folder


def _tagmill() -> str:
    return str(Path(sys.executable).with_name("tagmill"))


def _run_command(source: Path, out: Path, workers: int, model_stack: bool = False) -> list[str]:
    program = [sys.executable, "-c", WITH_MODEL_STACK] if model_stack else [_tagmill()]
    return [*program, "run", "--input", str(source), "--output", str(out), "--set", f"runner.workers={workers}"]


def _package_view(tree: Path, folder: Path) -> Path:
    """A folder to put first on PYTHONPATH so that `tagmill` imports from `tree` (its folders are the
    package's subpackages, as pyproject.toml maps them)."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "tagmill").mkdir(parents=True)
    for name in ("engine", "model", "pipeline", "configs"):
        (folder / "tagmill" / name).symlink_to(tree.resolve() / name)
    return folder


def _measure_interleaved(commands: dict[str, tuple], repeat: int) -> dict[str, dict]:
    """Each command `repeat` times, taking turns so that the machine's drift touches them alike; per
    command the median of each figure, and every try."""
    tries: dict[str, list[dict]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, (command, out, env) in commands.items():
            tries[name].append(_measure(command, out, env))
    return {name: {key: statistics.median(t[key] for t in runs) for key in runs[0]} | {"tries": runs}
            for name, runs in tries.items()}


def _measure(command: list[str], out: Path, env: dict[str, str] | None = None) -> dict:
    """Wall time, time to the first shard written and peak RSS of a fresh process (and its children)
    running `command`."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    watch = _Watch(process.pid, out / "shards", started)
    code = process.wait()
    seconds = time.perf_counter() - started
    watch.stop()
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {code}")
    return {"seconds": round(seconds, 2), "first_shard_s": round(watch.first_shard_s or seconds, 2),
            "peak_rss_mb": round(watch.peak_rss / 2**20, 1)}


class _Watch:
    """Samples the summed RSS of a process tree, and when its first shard's stats appear, until stopped."""

    def __init__(self, pid: int, shards: Path, started: float):
        self.peak_rss = 0
        self.first_shard_s: float | None = None
        self._shards, self._started = shards, started
        self._root = psutil.Process(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            if self.first_shard_s is None and self._shards.is_dir() and any(self._shards.glob("*_stats.json")):
                self.first_shard_s = time.perf_counter() - self._started
            try:
                processes = [self._root, *self._root.children(recursive=True)]
                self.peak_rss = max(self.peak_rss, sum(_rss(p) for p in processes))
            except psutil.Error:
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _rss(process: psutil.Process) -> int:
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _digests(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.iterdir() if p.suffix in (".tar", ".parquet") or p.name.endswith(".jsonl"))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _plain_loop(source: str, out: str) -> None:
    """The baseline: the same reading, checking, parsing and writing, as one plain Python loop."""
    from tagmill.engine.config import load_config
    from tagmill.engine.parse.parser import CaptionParser
    from tagmill.engine.vocab import Vocabulary
    from tagmill.pipeline.sinks import write_shard
    from tagmill.pipeline.index import mark_duplicates
    from tagmill.pipeline.sources import plan_input, read_shard
    from tagmill.pipeline.transforms import check_image, parsed_tags

    config = load_config(ROOT / "configs" / "default.yaml")
    folder = Path(out)
    folder.mkdir(parents=True)
    parser = CaptionParser(Vocabulary.from_files(Path(source) / "tags.txt", Path(source) / "synonyms.json"))
    for task in mark_duplicates(plan_input(source, config.input.samples_per_shard)):
        records = []
        for record in read_shard(task, config.input.max_caption_chars):
            check_image(record, config.input.max_image_pixels)
            if not record.rejected:
                record.tags.extend(parsed_tags(parser, record.captions))
            records.append(record)
        write_shard(folder, task.index, records, config.output_fingerprint())


def _report(results: dict) -> None:
    loop, run, small, stack = results["loop"], results["run"], results["run_small"], results["run_small_model_stack"]
    print(f"{'':40}{'seconds':>10}{'samples/s':>12}{'first shard s':>15}{'peak RSS MB':>14}")
    for name, row, n in (("plain Python loop", loop, results["n"]),
                         (f"tagmill run ({results['workers']} worker)", run, results["n"]),
                         ("tagmill run, small input", small, results["small"]),
                         ("tagmill run, small, model stack loaded", stack, results["small"])):
        print(f"{name:40}{row['seconds']:>10.2f}{n / row['seconds']:>12.0f}{row['first_shard_s']:>15.2f}"
              f"{row['peak_rss_mb']:>14.1f}")
    print(f"medians of {results['repeat']} tries each")
    print(f"time ratio run/loop: {results['time_ratio']:.3f} (target <= {TARGET_TIME_RATIO})")
    print(f"peak RSS ratio {results['n']}/{results['small']}: {results['rss_ratio']:.3f} (target <= {TARGET_RSS_RATIO})")
    print(f"shards identical to the loop's: {results['identical_shards']}")
    print(f"parse-only peak RSS (small input): {small['peak_rss_mb']:.0f} MB (target <= {TARGET_LEAN_RSS_MB}), "
          f"{stack['peak_rss_mb']:.0f} MB with the model stack loaded")
    print(f"time to the first shard, lean / model stack loaded: {results['first_shard_ratio']:.3f} "
          f"(target <= {TARGET_FIRST_SHARD_RATIO})")
    if "run_small_before" in results:
        before = results["run_small_before"]
        print(f"the earlier tree, small input: {before['seconds']:.2f} s, first shard {before['first_shard_s']:.2f} s "
              f"(lean / earlier {small['first_shard_s'] / before['first_shard_s']:.3f}), "
              f"peak RSS {before['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
