"""The `tagmill` command: synth, vocab, parse, run, report, audit, rounds, train, train-clip, eval, tag, import-model,
add-tags."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import sys
from typing import Iterator

from tagmill.engine import storage
from tagmill.engine.captions import check_captions
from tagmill.engine.config import ConfigError
from tagmill.engine.parse.mine import TermCounter, select_vocabulary
from tagmill.engine.parse.parser import CaptionParser
from tagmill.engine.records import RecordError
from tagmill.engine.synth.world import SynthConfig, synthesize
from tagmill.engine.text import find_invalid, first_invalid
from tagmill.engine.vocab import Vocabulary, VocabularyError
from tagmill.pipeline.audit_cli import add_audit, print_human_estimates
from tagmill.pipeline.index import mark_duplicates
from tagmill.pipeline.sources import InputError, plan_input, read_shard

USER_ERRORS = (ConfigError, InputError, VocabularyError, FileNotFoundError, ValueError)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    args = _parser().parse_args(argv)
    try:
        args.command(args)
        return 0
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
    _add_report(commands)
    add_audit(commands, _command)
    _add_rounds(commands)
    _add_train(commands)
    _add_train_clip(commands)
    _add_eval(commands)
    _add_tag(commands)
    _add_import_model(commands)
    _add_add_tags(commands)
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
    for task in mark_duplicates(plan_input(path, 10_000)):
        for record in read_shard(task, max_caption_chars=10_000):
            if not record.rejected:  # as `tagmill run` mines: no duplicates, no text it would reject
                yield from record.captions


def _caption_values(line: dict) -> list[str]:
    """A line's usable captions: text, not blank, valid UTF-8 (a JSON escape can hold a lone surrogate)."""
    value = line.get("captions", line.get("caption"))
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v.strip() and first_invalid(v) is None]


def _jsonl_objects(path: str) -> Iterator[dict]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                value = None
            yield value if isinstance(value, dict) else {}


# ---- parse ---------------------------------------------------------------------------------

PARSE_LINES_PER_WRITE = 1000


def _add_parse(commands) -> None:
    sub = _command(commands, "parse", _parse, "Parse captions into tags: one output line per input line.")
    sub.add_argument("--vocab", required=True, help="RAM-format tag list or vocab.json")
    sub.add_argument("--synonyms", help='JSON {"tag": ["surface form", ...]}')
    sub.add_argument("--input", required=True, help="JSONL with at least id and caption (or captions)")
    sub.add_argument("--output", required=True, help="JSONL of {id, tags}")


def _parse(args) -> None:
    """One output line per input line, written a thousand lines at a time."""
    parser = CaptionParser(Vocabulary.from_files(args.vocab, args.synonyms))
    lines = errors = 0
    pending: list[str] = []
    with open(args.output, "w", encoding="utf-8") as out:
        for fields in _jsonl_objects(args.input):
            result = _parse_line(parser, fields)
            errors += "error" in result
            lines += 1
            pending.append(_result_line(result))
            if len(pending) == PARSE_LINES_PER_WRITE:
                out.write("".join(pending))
                pending.clear()
        out.write("".join(pending))
    print(f"parsed {lines} lines into {args.output}" + (f" ({errors} with errors)" if errors else ""))


def _parse_line(parser: CaptionParser, fields: dict) -> dict:
    captions = fields.get("captions", fields.get("caption"))
    bad_id = find_invalid(fields.get("id"), "the id", repairable=False)
    if bad_id is not None:
        return {"id": fields.get("id"), "tags": [], "error": bad_id}
    try:
        texts = check_captions(captions, max_chars=100_000)
    except RecordError as err:
        return {"id": fields.get("id"), "tags": [], "error": err.message}
    if len(texts) == 1:
        return {"id": fields.get("id"), "tags": parser.parse(texts[0])}
    return {"id": fields.get("id"), "tags": sorted({tag for text in texts for tag in parser.parse(text)})}


def _result_line(result: dict) -> str:
    """The result as `json.dumps` writes it, with each distinct tag list encoded only once."""
    if "error" in result:
        line = json.dumps(result, ensure_ascii=False)
        # an id UTF-8 cannot hold is written as the JSON escapes it came in
        return (line if first_invalid(line) is None else json.dumps(result)) + "\n"
    key = result["id"]
    key_json = str(key) if type(key) is int else json.dumps(key, ensure_ascii=False)
    return '{"id": ' + key_json + ', "tags": ' + _tag_list_json(tuple(result["tags"])) + "}\n"


@functools.lru_cache(maxsize=1 << 16)
def _tag_list_json(tags: tuple[str, ...]) -> str:
    return json.dumps(list(tags), ensure_ascii=False)


@contextlib.contextmanager
def _quiet_import():
    """Beam warns at import about optional Google Cloud clients a local run never uses."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


# ---- run -----------------------------------------------------------------------------------

def _add_run(commands) -> None:
    with _quiet_import():
        from tagmill.pipeline import job
    sub = _command(commands, "run", lambda args: job.execute(args), "Run the data engine's Beam pipeline.")
    job.add_arguments(sub)


def _add_report(commands) -> None:
    sub = _command(commands, "report", _report, "Rebuild a run's audit report (report.json, report.html).")
    sub.add_argument("output", help="the run's output folder")
    sub.add_argument("--truth", help="truth.jsonl ({key, tags}): score each stage's tags against it")


def _report(args) -> None:
    from tagmill.pipeline.job import write_report

    report = write_report(args.output, args.truth)
    print(f"{report['samples']} samples; audit report: {storage.join(args.output, 'report.html')}")
    for stage, metrics in report.get("truth_metrics", {}).items():
        print(f"  {stage:>9}: precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f}, "
              f"F1 {metrics['f1']:.3f}")
    print_human_estimates(report)


def _add_rounds(commands) -> None:
    sub = _command(commands, "rounds", _rounds,
                   "Bootstrapped rounds: each round's cleaned shards train the tagger that generates the next.")
    sub.add_argument("--config", required=True, help="YAML rounds config: a file or a shipped one, e.g. rounds/synthetic.yaml")
    sub.add_argument("--input", required=True, help="the input of every round's run (as for `tagmill run`)")
    sub.add_argument("--work", required=True, help="folder for round-0 ... round-N, rounds.json and report.html")
    sub.add_argument("--rounds", type=int, default=2, help="rounds after round 0 (default 2)")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    sub.add_argument("--truth", help="truth.jsonl; default: the input folder's truth.jsonl, when there is one")


def _rounds(args) -> None:
    with _quiet_import():
        from tagmill.pipeline.rounds import format_rounds, load_rounds_config, run_rounds

    history = run_rounds(load_rounds_config(args.config, args.set), args.input, args.work, args.rounds, args.truth)
    print(format_rounds(history))
    print(f"rounds: {storage.join(args.work, 'rounds.json')}\nreport: {storage.join(args.work, 'report.html')}")


# ---- train, eval, tag (torch is imported only here) -------------------------------------------

def _add_train(commands) -> None:
    sub = _command(commands, "train", _train, "Train a tagging model on the shards a run wrote.")
    _training_arguments(sub, "model folder (resumes when it holds a checkpoint)", "train/tiny.yaml")
    sub.add_argument("--nproc", type=int, help="processes (GPUs) on this machine training together; "
                     "default: the config's nproc. Under torchrun, torchrun's processes train")


def _training_arguments(sub: argparse.ArgumentParser, out_help: str, config_example: str) -> None:
    sub.add_argument("--shards", required=True, help="a run's output folder or its shards/ folder")
    sub.add_argument("--out", required=True, help=out_help)
    sub.add_argument("--config", help=f"YAML training config: a file or a shipped one; default: {config_example}")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")


def _train(args) -> None:
    from tagmill.model.train import load_train_config, train

    nproc = [f"nproc={args.nproc}"] if args.nproc is not None else []
    config = load_train_config(args.config, args.set + nproc)
    summary = train(args.shards, args.out, config)
    if summary is None:
        return  # a process under torchrun other than the first
    holdout = summary["holdout"]
    print(f"trained on {summary['train_samples']} samples: held-out mAP {holdout['mAP']:.3f}, "
          f"micro F1 {holdout['micro_f1']:.3f}; model in {args.out}")


def _add_train_clip(commands) -> None:
    sub = _command(commands, "train-clip", _train_clip,
                   "Train a small CLIP on the image-caption pairs of the shards a run wrote (for clean.clip).")
    _training_arguments(sub, "CLIP folder to write", "train/tiny-clip.yaml")


def _train_clip(args) -> None:
    from tagmill.model.clip_train import load_clip_train_config, train_clip

    summary = train_clip(args.shards, args.out, load_clip_train_config(args.config, args.set))
    print(f"trained CLIP {summary['arch']} on {summary['samples_seen']} image-caption pairs "
          f"(last epoch's loss {summary['epoch_losses'][-1]:.3f}); folder {args.out}")


def _add_eval(commands) -> None:
    sub = _command(commands, "eval", _eval, "Score a tagging model on shards (JSON on stdout).")
    sub.add_argument("--model", required=True, help="a model folder: trained, or imported with import-model")
    sub.add_argument("--shards", required=True)
    sub.add_argument("--truth", help="truth.jsonl ({key, tags}); default: the shards' own tags")
    sub.add_argument("--split", default="all", choices=["all", "holdout", "train"])


def _eval(args) -> None:
    from tagmill.model.evaluate import evaluate_checkpoint

    print(json.dumps(evaluate_checkpoint(args.model, args.shards, args.truth, args.split), indent=1))


def _add_tag(commands) -> None:
    sub = _command(commands, "tag", _tag, "Print the tags a model gives some images.")
    sub.add_argument("--model", required=True, help="a model folder: trained, or imported with import-model")
    sub.add_argument("--logits", metavar="FILE.npy",
                     help="also write the raw tag logits: float32 (images, tags), in the model's tag order")
    sub.add_argument("images", nargs="+")


def _tag(args) -> None:
    import numpy as np

    from tagmill.model.predict import tag_image_files

    tagged = tag_image_files(args.model, args.images)
    for path, tags, caption in zip(args.images, tagged.tags, tagged.captions):
        print(f"{path}: " + ", ".join(f"{tag} ({score:.2f})" for tag, score in tags))
        if caption is not None:
            print(f"  caption: {caption}")
    if args.logits:
        path = args.logits if args.logits.endswith(".npy") else args.logits + ".npy"  # as np.save names it
        storage.write_atomic(path, lambda stream: np.save(stream, tagged.logits))


def _add_import_model(commands) -> None:
    sub = _command(commands, "import-model", _import_model,
                   "Import an official RAM, RAM++ or Tag2Text checkpoint as a tagmill model folder.")
    sub.add_argument("checkpoint", help="the official .pth file (read as plain tensors: nothing in it runs)")
    sub.add_argument("--family", required=True, choices=["ram", "ram_plus", "tag2text"])
    sub.add_argument("--out", required=True, help="model folder to write")
    sub.add_argument("--tags", help="the tag list the checkpoint was trained with, one tag per line in class "
                                    "order (needed: the checkpoint holds no names)")
    sub.add_argument("--thresholds", help="one threshold per tag and line (RAM's ram_tag_list_threshold.txt); "
                                          "default: the family's 0.68")
    sub.add_argument("--head-heads", type=int, default=4,
                     help="attention heads of the tagging head, which shapes cannot tell (default 4, as every "
                          "official checkpoint)")


def _import_model(args) -> None:
    from tagmill.model.ram.importer import import_checkpoint

    summary = import_checkpoint(args.checkpoint, args.family, args.out, args.tags, args.thresholds, args.head_heads)
    config = summary.config
    print(f"imported {config.name} ({config.family}, {summary.tags} tags, Swin {config.swin.embed_dim} wide, "
          f"depths {config.swin.depths}, window {config.swin.window}) into {args.out}")
    for note in summary.notes:
        print(f"  {note}")


def _add_add_tags(commands) -> None:
    sub = _command(commands, "add-tags", _add_tags,
                   "Add tags to an imported RAM or RAM++ model, open-set, from a CLIP text encoder's embeddings.")
    sub.add_argument("--model", required=True, help="the model folder (imported with import-model, or fine-tuned)")
    sub.add_argument("--tags", required=True, help="tags to score, one per line; those the model has are kept")
    sub.add_argument("--clip", required=True, help="the text encoder: open_clip ARCH:WEIGHTS_FILE; the official "
                                                   "models' is ViT-B-16:/path/open_clip_pytorch_model.bin")
    sub.add_argument("--descriptions", help='RAM++: JSON {"tag": ["description", ...]}, embedded one per slot')
    sub.add_argument("--out", required=True, help="model folder to write")


def _add_tags(args) -> None:
    from tagmill.engine.vocab import read_tag_list
    from tagmill.model.ram.retag import add_tags

    added = add_tags(args.model, list(read_tag_list(args.tags)), args.out, args.clip, args.descriptions)
    shown = ", ".join(added[:5]) + (", ..." if len(added) > 5 else "")
    print(f"added {len(added)} tags open-set{f' ({shown})' if added else ''}; model folder {args.out}")


if __name__ == "__main__":
    sys.exit(main())
