"""Benchmark: parse-only `tagmill run` against a plain Python loop doing the same work, and its memory.

    python benchmarks/bench_pipeline.py [--work DIR] [--n 100000] [--small 10000] [--workers 1]

Targets (issue "Foundation"): the run takes at most 1.3x the plain loop's time over the same input,
in the same benchmark run; peak RSS grows at most 1.2x from `--small` to `--n` samples.

The plain loop uses the same library functions in one process with no Beam: plan the input (which
also finds duplicate ids), read each shard, check each image, parse the captions, write the shard.
Both write byte-identical shards (checked). Both run as fresh processes, timed from start to exit,
with their peak resident memory (summed over the process tree) sampled every 20 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
TARGET_TIME_RATIO = 1.3
TARGET_RSS_RATIO = 1.2


def main() -> None:
    args = _arguments()
    if args.loop:
        _plain_loop(*args.loop)
        return
    work = Path(args.work)
    world = _world(work / "world", args.n, args.shard_size)
    small_input = _small_input(world, work / "world-small", args.small // args.shard_size)
    results = {
        "n": args.n, "small": args.small, "workers": args.workers,
        "loop": _measure([sys.executable, __file__, "--loop", str(world), str(work / "loop")], work / "loop"),
        "run": _measure(_run_command(world, work / "run", args.workers), work / "run"),
        "run_small": _measure(_run_command(small_input, work / "run-small", args.workers), work / "run-small"),
    }
    results["identical_shards"] = _digests(work / "loop") == _digests(work / "run" / "shards")
    results["time_ratio"] = round(results["run"]["seconds"] / results["loop"]["seconds"], 3)
    results["rss_ratio"] = round(results["run"]["peak_rss_mb"] / results["run_small"]["peak_rss_mb"], 3)
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
    parser.add_argument("--json", help="also write the results here")
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


def _run_command(source: Path, out: Path, workers: int) -> list[str]:
    return [_tagmill(), "run", "--input", str(source), "--output", str(out), "--set", f"runner.workers={workers}"]


def _measure(command: list[str], out: Path) -> dict:
    """Wall time and peak RSS of a fresh process (and its children) running `command`."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = _PeakRss(process.pid)
    code = process.wait()
    seconds = time.perf_counter() - started
    peak.stop()
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {code}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak.value / 2**20, 1)}


class _PeakRss:
    """Samples the summed RSS of a process tree until stopped."""

    def __init__(self, pid: int):
        self.value = 0
        self._root = psutil.Process(pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            try:
                processes = [self._root, *self._root.children(recursive=True)]
                self.value = max(self.value, sum(_rss(p) for p in processes))
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
    from tagmill.pipeline.sources import plan_input, read_shard
    from tagmill.pipeline.transforms import check_image, parsed_tags

    config = load_config(ROOT / "configs" / "default.yaml")
    folder = Path(out)
    folder.mkdir(parents=True)
    parser = CaptionParser(Vocabulary.from_files(Path(source) / "tags.txt", Path(source) / "synonyms.json"))
    for task in plan_input(source, config.input.samples_per_shard):
        records = []
        for record in read_shard(task, config.input.max_caption_chars):
            check_image(record, config.input.max_image_pixels)
            if not record.rejected:
                record.tags.extend(parsed_tags(parser, record.captions))
            records.append(record)
        write_shard(folder, task.index, records, config.output_fingerprint())


def _report(results: dict) -> None:
    loop, run, small = results["loop"], results["run"], results["run_small"]
    print(f"{'':28}{'seconds':>10}{'samples/s':>12}{'peak RSS MB':>14}")
    for name, row, n in (("plain Python loop", loop, results["n"]), (f"tagmill run ({results['workers']} worker)", run,
                         results["n"]), ("tagmill run, small input", small, results["small"])):
        print(f"{name:28}{row['seconds']:>10.2f}{n / row['seconds']:>12.0f}{row['peak_rss_mb']:>14.1f}")
    print(f"time ratio run/loop: {results['time_ratio']:.3f} (target <= {TARGET_TIME_RATIO})")
    print(f"peak RSS ratio {results['n']}/{results['small']}: {results['rss_ratio']:.3f} (target <= {TARGET_RSS_RATIO})")
    print(f"shards identical to the loop's: {results['identical_shards']}")


if __name__ == "__main__":
    main()
