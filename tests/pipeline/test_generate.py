"""The Generate stage: the tagger as a Beam ModelHandler inside a real FnApiRunner pipeline."""

import json
import tarfile
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import torch
from apache_beam.testing.test_pipeline import TestPipeline as BeamPipeline
from apache_beam.testing.util import assert_that, equal_to

from helpers import make_world, read_jsonl
from tagmill.engine.parse.parser import CaptionParser
from tagmill.engine.records import Record, Reject
from tagmill.engine.vocab import Vocabulary
from tagmill.model.caption import train_tokenizer
from tagmill.model.checkpoint import save_tagger
from tagmill.model.config import model_config
from tagmill.model.predict import LoadedTagger
from tagmill.model.tagger import Tagger
from tagmill.pipeline.handlers import _ImageModelHandler
from tagmill.pipeline.job import run
from tagmill.pipeline.stages import _InferRecords


def save_random_tagger(folder: Path, tags: list[str], threshold: float = 0.5, captions: list[str] = ()) -> Path:
    torch.manual_seed(0)
    tokenizer = train_tokenizer(captions, 200) if captions else None
    model = Tagger(model_config("tiny-caption" if captions else "tiny"), len(tags), caption_tokenizer=tokenizer)
    model.thresholds.fill_(threshold)
    save_tagger(model, folder, tags)
    return folder


def engine_args(world: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["--input", str(world), "--output", str(out), "--set", "stages=[parse,generate]",
            "--set", f"generate.model={model}", "--set", "generate.device=cpu", *extra]


def samples(out: Path) -> dict[str, dict]:
    found = {}
    for path in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    data = json.loads(tar.extractfile(member).read())
                    found[data["id"]] = data
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("world"), 40, shard_size=20)


def test_generated_tags_and_scores_match_the_tagger(world, tmp_path):
    tags = [t for t in (world / "tags.txt").read_text().splitlines() if t]
    model = save_random_tagger(tmp_path / "model", tags, threshold=0.5)
    summary = run(engine_args(world, tmp_path / "out", model, "--set", "generate.batch_size=7"))
    assert summary["counts"]["written"] == 40 and summary["counts"]["rejected"] == 0
    tagger = LoadedTagger(model, device="cpu")
    found = samples(tmp_path / "out")
    with tarfile.open(next((world).glob("*.tar"))) as tar:
        first = next(m for m in tar.getmembers() if m.name.endswith(".jpg"))
        key, image = first.name.split(".")[0], tar.extractfile(first).read()
    expected = dict(zip(tags, tagger.scores([image])[0]))
    sample = found[key]
    generated = {t for t, entries in sample["tag_sources"].items() if any(e["source"] == "generated" for e in entries)}
    assert generated == {t for t, score in expected.items() if score >= 0.5}
    for tag in sample["tags"]:
        assert sample["scores"][tag]["tagger"] == pytest.approx(expected[tag], abs=1e-4)
    assert summary["beam_counters"]["tags_generated"] == sum(
        1 for s in found.values() for entries in s["tag_sources"].values() if entries[-1]["source"] == "generated")


def test_a_model_of_other_tags_is_a_clear_error(world, tmp_path):
    model = save_random_tagger(tmp_path / "model", ["zebra", "giraffe"])
    with pytest.raises(ValueError, match="generate.model: the tagger's 2 tags share none"):
        run(engine_args(world, tmp_path / "out", model))


def test_a_folder_without_a_checkpoint_is_a_clear_error(world, tmp_path):
    with pytest.raises(ValueError, match="generate.model: .* is not a tagger checkpoint"):
        run(engine_args(world, tmp_path / "out", tmp_path))


class _FailsOnBlack(_ImageModelHandler):
    """A model that cannot score one kind of image: its whole batch fails."""

    def load_model(self):
        return None

    def _predict(self, model, images):
        if b"black" in images:
            raise RuntimeError("cannot score black")
        return np.ones((len(images), 2), dtype=np.float32)


def test_failed_inference_turns_its_batch_into_rejects():
    records = [Record(f"s{i}", "x", 0, i, image=b"black" if i == 3 else b"fine") for i in range(6)]
    records.append(Record("bad", "x", 0, 9).reject(Reject.IMAGE_CORRUPT, "broken"))
    with BeamPipeline(runner="FnApiRunner") as pipeline:
        rows, rejects = (pipeline | beam.Create(records)
                         | _InferRecords(_FailsOnBlack("cpu", batch_size=1, cpu_threads=1), "generate"))
        assert_that(rows | "Ids" >> beam.MapTuple(lambda r, row: (r.id, row.tolist())),
                    equal_to([(f"s{i}", [1.0, 1.0]) for i in range(6) if i != 3]), label="rows")
        assert_that(rejects | "Why" >> beam.Map(lambda r: (r.id, r.reject_reason, "cannot score black" in r.reject_message)),
                    equal_to([("s3", Reject.INFERENCE_FAILED, True), ("bad", Reject.IMAGE_CORRUPT, False)]),
                    label="rejects")


def test_generated_captions_are_parsed_into_generated_tags(world, tmp_path):
    tags = [t for t in (world / "tags.txt").read_text().splitlines() if t]
    captions = ["a red circle on the grass", "a blue star by the sea", "two green squares in the snow"]
    model = save_random_tagger(tmp_path / "model", tags, captions=captions)
    run(engine_args(world, tmp_path / "out", model, "--set", "generate.captions=true"))
    parser = CaptionParser(Vocabulary.from_files(world / "tags.txt", world / "synonyms.json"))
    found = samples(tmp_path / "out").values()
    assert any(e["text"] for s in found for entries in s["tag_sources"].values() for e in entries
               if e["source"] == "generated")
    for sample in found:
        assert sample["generated_caption"]
        from_caption = {t for t, entries in sample["tag_sources"].items()
                        if any(e["source"] == "generated" and e["text"] for e in entries)}  # words of the caption
        named = {m.tag for m in parser.mentions(sample["generated_caption"]) if m.ignored is None}
        assert from_caption <= named
        assert all("tagger" in sample["scores"][t] for t in sample["tag_sources"])


def test_asking_captions_of_a_tagger_without_a_caption_head_is_a_clear_error(world, tmp_path):
    tags = [t for t in (world / "tags.txt").read_text().splitlines() if t]
    model = save_random_tagger(tmp_path / "model", tags)
    with pytest.raises(ValueError, match="has no caption head"):
        run(engine_args(world, tmp_path / "out", model, "--set", "generate.captions=true"))
