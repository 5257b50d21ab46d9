"""Benchmark: the `tagmill parse` command end to end against SceneGraphParser, on one core.

    python benchmarks/bench_parse_cli.py [--data ../shared/data] [--small 40000] [--large 244000]
                                         [--repeats 2] [--core 0] [--sgp-captions 1000] [--json OUT]
                                         [--command "OTHER tagmill COMMAND"] [--vocabulary coco80|ram]

The command runs as a user runs it (its own process, JSONL in and out) on COCO val2017 captions
repeated to `--small` and `--large` lines, pinned to one core (the affinity `taskset -c 0` sets,
which every child process inherits). Its rate is the extra lines over the extra time,
(large - small) / (t_large - t_small), so start-up (imports, the vocabulary's surface forms)
drops out; the start-up left over is reported beside it. Each size runs `--repeats` times,
interleaved, and the fastest run counts.

SceneGraphParser runs in this process on the same core, in the same run, over the first
`--sgp-captions` captions (as in bench_parse.py: spaCy's small English model through `nlp.pipe`),
once before and once after the command's runs; the faster of the two counts. Both vocabularies are
measured: COCO-80 with its synonyms (`coco/coco80.txt`, `coco/coco80_synonyms.json`), and RAM's
4,585 tags (`ram/ram_tag_list.txt`).

Besides wall-clock rates, the CPU time of each (user + system) gives a second rate that a busy
machine disturbs less. Target: the command at least 40x SceneGraphParser (wall clock).
`--command` times another build of the command (say, an older release) the same way.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_parse import load_coco, sgp_parser  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 40.0


@dataclass(frozen=True)
class Timing:
    """One run: wall-clock seconds and CPU seconds (user + system)."""

    wall: float
    cpu: float


def main() -> None:
    args = _arguments()
    data = Path(args.data)
    if not (data / "coco" / "captions_val2017.jsonl").exists():
        print(f"no COCO reference data under {data}: nothing to benchmark")
        return
    os.sched_setaffinity(0, {args.core})
    coco, coco80 = load_coco(data / "coco")
    command = shlex.split(args.command) if args.command else _tagmill_command()
    results = {"core": args.core, "small": args.small, "large": args.large, "command": command,
               "target_ratio": TARGET_RATIO, "vocabularies": {}}
    with tempfile.TemporaryDirectory() as work:
        inputs = {n: _write_input(Path(work) / f"captions_{n}.jsonl", coco.captions, n)
                  for n in (args.small, args.large)}
        for name, vocab_args, vocab in _vocabularies(data, coco80, args.vocabulary):
            results["vocabularies"][name] = _bench_vocabulary(command, vocab_args, vocab, inputs, coco.captions,
                                                              args, Path(work))
    _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the reference data folder")
    parser.add_argument("--small", type=int, default=40_000, help="lines of the small input")
    parser.add_argument("--large", type=int, default=244_000, help="lines of the large input")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each size (the fastest counts)")
    parser.add_argument("--core", type=int, default=0, help="the one CPU core everything runs on")
    parser.add_argument("--sgp-captions", type=int, default=1000, help="captions SceneGraphParser parses")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--command", help="the command to time instead of the installed `tagmill`")
    parser.add_argument("--vocabulary", choices=("coco80", "ram"), help="only this vocabulary")
    return parser.parse_args()


def _tagmill_command() -> list[str]:
    """The installed `tagmill` script beside this Python, else the CLI module."""
    script = Path(sys.executable).with_name("tagmill")
    if script.exists():
        return [str(script)]
    found = shutil.which("tagmill")
    return [found] if found else [sys.executable, "-m", "tagmill.pipeline.cli"]


def _write_input(path: Path, captions: list[str], lines: int) -> Path:
    """`lines` JSONL lines {"id", "caption"}, the COCO captions over and over."""
    with open(path, "w", encoding="utf-8") as f:
        for i, caption in zip(range(lines), itertools.cycle(captions)):
            f.write(json.dumps({"id": i, "caption": caption}) + "\n")
    return path


def _vocabularies(data: Path, coco80, only: str | None):
    """(name, the command's vocabulary arguments, the Vocabulary SceneGraphParser looks tags up in)."""
    from tagmill.engine.vocab import Vocabulary

    coco_dir, ram_list = data / "coco", data / "ram" / "ram_tag_list.txt"
    if only in (None, "coco80"):
        yield "coco80+synonyms", ["--vocab", str(coco_dir / "coco80.txt"), "--synonyms",
                                  str(coco_dir / "coco80_synonyms.json")], coco80
    if only in (None, "ram") and ram_list.exists():
        yield "ram-4585", ["--vocab", str(ram_list)], Vocabulary.from_files(ram_list)


def _bench_vocabulary(command, vocab_args, vocab, inputs: dict[int, Path], captions: list[str], args,
                      work: Path) -> dict:
    sgp = sgp_parser(vocab)
    sgp_rates = [_sgp_rate(sgp, captions[:args.sgp_captions])] if not isinstance(sgp, str) else []
    runs: dict[int, list[Timing]] = {n: [] for n in inputs}
    for _ in range(max(1, args.repeats)):
        for lines, path in inputs.items():
            runs[lines].append(_run_command(command + ["parse", *vocab_args, "--input", str(path),
                                                       "--output", str(work / "parsed.jsonl")]))
    if sgp_rates:
        sgp_rates.append(_sgp_rate(sgp, captions[:args.sgp_captions]))
    return _summary(runs, args.small, args.large, sgp_rates)


def _run_command(argv: list[str]) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Timing(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def _sgp_rate(run, captions: list[str]) -> Timing:
    """SceneGraphParser's captions per second (wall, CPU) after a warm-up on a few captions."""
    run(captions[:50])
    wall, cpu = time.perf_counter(), time.process_time()
    run(captions)
    return Timing(len(captions) / (time.perf_counter() - wall), len(captions) / (time.process_time() - cpu))


def _summary(runs: dict[int, list[Timing]], small: int, large: int, sgp_rates: list[Timing]) -> dict:
    best = {n: Timing(min(t.wall for t in ts), min(t.cpu for t in ts)) for n, ts in runs.items()}
    wall_rate = (large - small) / (best[large].wall - best[small].wall)
    cpu_rate = (large - small) / (best[large].cpu - best[small].cpu)
    result = {"runs": {str(n): [[round(t.wall, 2), round(t.cpu, 2)] for t in ts] for n, ts in runs.items()},
              "captions_per_s": round(wall_rate), "captions_per_cpu_s": round(cpu_rate),
              "startup_s": round(best[small].wall - small / wall_rate, 2)}
    if sgp_rates:
        sgp_wall, sgp_cpu = max(r.wall for r in sgp_rates), max(r.cpu for r in sgp_rates)
        result.update({"sgp_captions_per_s": round(sgp_wall, 1), "sgp_captions_per_cpu_s": round(sgp_cpu, 1),
                       "ratio": round(wall_rate / sgp_wall, 1), "cpu_ratio": round(cpu_rate / sgp_cpu, 1)})
    return result


def _report(results: dict) -> None:
    print(f"`tagmill parse` on core {results['core']}: {results['large']:,} lines minus {results['small']:,} lines")
    print(f"{'vocabulary':16} {'captions/s':>11} {'SGP/s':>7} {'ratio':>6} {'CPU: captions/s':>16} {'SGP/s':>7} "
          f"{'ratio':>6} {'start-up s':>11}")
    for name, row in results["vocabularies"].items():
        print(f"{name:16} {row['captions_per_s']:>11,} {row.get('sgp_captions_per_s', '-'):>7} "
              f"{row.get('ratio', '-'):>6} {row['captions_per_cpu_s']:>16,} "
              f"{row.get('sgp_captions_per_cpu_s', '-'):>7} {row.get('cpu_ratio', '-'):>6} {row['startup_s']:>11}")
    coco = results["vocabularies"].get("coco80+synonyms", {})
    if "ratio" in coco:
        verdict = "meets" if coco["ratio"] >= TARGET_RATIO else "misses"
        print(f"COCO-80: {coco['ratio']}x SceneGraphParser end to end ({verdict} the {TARGET_RATIO:.0f}x target)")
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
