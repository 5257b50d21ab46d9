"""Benchmark: the audit report of a run whose shards place each image in its tar (schema 3), against the same
shards without the places (as schema 2 wrote them, so the report scans every tar its examples sit in), on the
local disk and on S3 (moto's server on loopback).

    python benchmarks/bench_report.py --run OUT [--work DIR] [--repeat 3]

OUT is a local `tagmill run` output (e.g. `benchmarks/bench_pipeline.py`'s WORK/run). The report shows up to
1,500 thumbnails, whatever the run's size: with places it reads those images' bytes, without them every shard
holding one. Prints the median seconds of each report and the bytes of the tars it had to read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import pyarrow.parquet as pq

from tagmill.engine.schema import IMAGE_PLACE_COLUMNS



def main() -> None:
    args = _arguments()
    work = Path(args.work)
    placed, scanned = work / "placed", work / "scanned"
    _copy_run(Path(args.run), placed)
    _copy_run(Path(args.run), scanned)
    for table in (scanned / "shards").glob("*.parquet"):
        pq.write_table(pq.read_table(table).drop_columns(list(IMAGE_PLACE_COLUMNS)), table)
    with _S3Server() as bucket:
        outputs = {"local, placed": str(placed), "local, scanned": str(scanned),
                   "S3, placed": _upload(placed, f"{bucket}/placed"), "S3, scanned": _upload(scanned, f"{bucket}/scanned")}
        from tagmill.pipeline.job import write_report

        write_report(str(placed))  # imports and caches warmed
        seconds = {name: [] for name in outputs}
        for _ in range(args.repeat):
            for name, out in outputs.items():
                started = time.perf_counter()
                write_report(out)
                seconds[name].append(time.perf_counter() - started)
    shards = sum(p.stat().st_size for p in (placed / "shards").glob("*.tar"))
    print(f"run: {args.run} ({len(list((placed / 'shards').glob('*.tar')))} shards, {shards / 2**20:.0f} MiB of tars)")
    for name, tries in seconds.items():
        print(f"report, {name:16} {statistics.median(tries):7.2f} s (median of {args.repeat})")
    print(f"tar bytes the report needs: {_needed_bytes(placed) / 2**20:.2f} MiB placed, "
          f"{_scanned_bytes(placed) / 2**20:.0f} MiB scanned")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a local tagmill run output")
    parser.add_argument("--work", default="/tmp/tagmill-bench-report", help="scratch folder")
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args()


def _copy_run(run: Path, folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("report.*", "audit"))


class _S3Server:
    """moto's S3 server on 127.0.0.1 with one bucket, found through the standard AWS settings."""

    def __enter__(self) -> str:
        from moto.server import ThreadedMotoServer
        import fsspec

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
        fsspec.filesystem("s3").mkdir("bench-report")
        return "s3://bench-report"

    def __exit__(self, *exc) -> None:
        self._server.stop()


def _upload(folder: Path, url: str) -> str:
    import fsspec

    fs = fsspec.filesystem("s3")
    for path in folder.rglob("*"):
        if path.is_file():
            fs.put_file(str(path), f"{url}/{path.relative_to(folder).as_posix()}")
    return url


def _shown(out: Path) -> dict[str, dict]:
    """The samples the report shows an image of, with their shard and place."""
    import json

    from tagmill.engine.report.tag_browser import shown_samples

    report = json.loads((out / "report.json").read_text())
    shown = shown_samples(report)
    for example in report["examples"]:
        shown.update({sample["id"]: sample for sample in example["samples"]})
    return shown


def _needed_bytes(out: Path) -> int:
    return sum(sample["image"][1] for sample in _shown(out).values())


def _scanned_bytes(out: Path) -> int:
    return sum((out / "shards" / f"{shard}.tar").stat().st_size for shard in {s["shard"] for s in _shown(out).values()})


if __name__ == "__main__":
    main()
