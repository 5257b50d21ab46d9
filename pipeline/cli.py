"""The `tagmill` command: synth, vocab, parse, run."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Iterator

from tagmill.engine.config import ConfigError, load_config
from tagmill.engine.mine import TermCounter, select_vocabulary
from tagmill.engine.parse import CaptionParser
from tagmill.engine.records import RecordError
from tagmill.engine.synth import SynthConfig, synthesize
from tagmill.engine.vocab import Vocabulary, VocabularyError
from tagmill.pipeline.sources import InputError, plan_input, read_shard

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"
USER_ERRORS = (ConfigError, InputError, VocabularyError, FileNotFoundError, ValueError)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.command(args) or 0
    except USER_ERRORS as err:
        print(f"tagmill {args.name}: error: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tagmill", description="An automatic data engine for image tagging.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_synth(commands)
    _add_vocab(commands)
    _add_parse(commands)
    _add_run(commands)
    return parser


def _command(commands, name: str, handler, help_text: str) -> argparse.ArgumentParser:
    sub = commands.add_parser(name, help=help_text, description=help_text)
    sub.set_defaults(command=handler, name=name)
    return sub


# ---- synth ---------------------------------------------------------------------------------

def _add_synth(commands) -> None:
    sub = _command(commands, "synth", _synth, "Write a synthetic world of captioned images with known tags.")
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--n", type=int, required=True, help="number of samples")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--image-size", type=int, default=64)
    sub.add_argument("--hallucination", type=float, default=0.2, help="chance a caption names an absent object")
    sub.add_argument("--omission", type=float, default=0.3, help="chance a present object goes unmentioned")
    sub.add_argument("--wrong-attribute", type=float, default=0.1, help="chance an object's colour is named wrong")
    sub.add_argument("--negation", type=float, default=0.25, help="chance a caption denies an absent shape")
    sub.add_argument("--shard-size", type=int, default=1000)


def _synth(args) -> None:
    config = SynthConfig(n=args.n, seed=args.seed, image_size=args.image_size, hallucination=args.hallucination,
                         omission=args.omission, wrong_attribute=args.wrong_attribute, negation=args.negation,
                         shard_size=args.shard_size)
    summary = synthesize(args.out, config)
    print(f"wrote {summary.n} samples in {summary.shards} shards to {args.out} "
          f"(truth.jsonl, tags.txt and synonyms.json beside them)")


# ---- vocab ---------------------------------------------------------------------------------

def _add_vocab(commands) -> None:
    sub = _command(commands, "vocab", _vocab, "Mine a tag vocabulary from a caption corpus by frequency.")
    sub.add_argument("--input", required=True, help="JSONL/Parquet of captions, or webdataset tars")
    sub.add_argument("--out", required=True, help="vocab.json to write")
    sub.add_argument("--size", type=int, default=1000, help="at most this many tags")
    sub.add_argument("--min-count", type=int, default=5, help="captions a term must occur in")
    sub.add_argument("--spacy-model", help="an installed trained spaCy pipeline for part-of-speech tags")


def _vocab(args) -> None:
    counts = TermCounter(args.spacy_model).count(_captions(args.input))
    vocab = select_vocabulary(counts, args.size, args.min_count)
    vocab.save(args.out)
    print(f"mined {len(vocab)} tags from {counts.captions} captions into {args.out}")


def _captions(path: str) -> Iterator[str]:
    """Every caption of an input; JSONL lines need only a caption, no id or image."""
    if path.endswith(".jsonl"):
        for line in _jsonl_objects(path):
            yield from _caption_values(line)
        return
    for task in plan_input(path, 10_000):
        for record in read_shard(task, max_caption_chars=10_000):
            yield from record.captions


def _caption_values(line: dict) -> list[str]:
    value = line.get("captions", line.get("caption"))
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v.strip()]


def _jsonl_objects(path: str) -> Iterator[dict]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                value = None
            yield value if isinstance(value, dict) else {}


# ---- parse ---------------------------------------------------------------------------------

def _add_parse(commands) -> None:
    sub = _command(commands, "parse", _parse, "Parse captions into tags: one output line per input line.")
    sub.add_argument("--vocab", required=True, help="RAM-format tag list or vocab.json")
    sub.add_argument("--synonyms", help='JSON {"tag": ["surface form", ...]}')
    sub.add_argument("--input", required=True, help="JSONL with at least id and caption (or captions)")
    sub.add_argument("--output", required=True, help="JSONL of {id, tags}")


def _parse(args) -> None:
    parser = CaptionParser(Vocabulary.from_files(args.vocab, args.synonyms))
    lines = errors = 0
    with open(args.output, "w", encoding="utf-8") as out:
        for fields in _jsonl_objects(args.input):
            result = _parse_line(parser, fields)
            errors += "error" in result
            lines += 1
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
    print(f"parsed {lines} lines into {args.output}" + (f" ({errors} with errors)" if errors else ""))


def _parse_line(parser: CaptionParser, fields: dict) -> dict:
    captions = fields.get("captions", fields.get("caption"))
    from tagmill.engine.captions import check_captions
    try:
        texts = check_captions(captions, max_chars=100_000)
    except RecordError as err:
        return {"id": fields.get("id"), "tags": [], "error": err.message}
    tags = sorted({tag for text in texts for tag in parser.parse(text)})
    return {"id": fields.get("id"), "tags": tags}


# ---- run -----------------------------------------------------------------------------------

def _add_run(commands) -> None:
    sub = _command(commands, "run", _run, "Run the data engine's Beam pipeline over an input.")
    sub.add_argument("--config", help=f"YAML run config (default: {DEFAULT_CONFIG.name})")
    sub.add_argument("--input", required=True, help="folder or glob of webdataset tars, or a JSONL/Parquet manifest")
    sub.add_argument("--output", required=True, help="output folder")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")


def _run(args) -> None:
    from tagmill.pipeline.job import RunError, run_job

    config_path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None)
    config = load_config(config_path, args.set)
    if not Path(args.input.split("*")[0] or ".").exists():
        raise InputError(f"input {args.input} does not exist")
    try:
        summary = run_job(config, args.input, args.output)
    except RunError as err:
        raise ValueError(str(err)) from None
    counts = summary["counts"]
    print(f"{counts['input']} samples: {counts['written']} written, {counts['rejected']} rejected "
          f"({summary['timings_s']['pipeline']:.1f} s in the pipeline)")
    print(f"shards: {Path(args.output) / 'shards'}\nrun report: {Path(args.output) / 'run.json'}"
          f"\nrejects: {Path(args.output) / 'rejects.jsonl'}")


if __name__ == "__main__":
    sys.exit(main())
