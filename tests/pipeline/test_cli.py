"""The `tagmill` command line: each subcommand works, and user errors are one line with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_world, read_jsonl
from tagmill.pipeline.cli import main


def tagmill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tagmill.pipeline.cli", *args], capture_output=True, text=True)


def test_synth_writes_a_world(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "w"), "--n", "30", "--seed", "4", "--shard-size", "20"]) == 0
    assert sorted(p.name for p in (tmp_path / "w").glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert len(read_jsonl(tmp_path / "w" / "truth.jsonl")) == 30
    assert "wrote 30 samples in 2 shards" in capsys.readouterr().out


def test_parse_writes_one_line_per_input_line(tmp_path):
    (tmp_path / "tags.txt").write_text("dog\ncat\nteddy bear\n")
    (tmp_path / "syn.json").write_text(json.dumps({"cat": ["kitten"]}))
    lines = [{"id": 1, "caption": "Two dogs and a kitten"}, {"id": 2, "caption": "a teddy bear, no dogs"},
             {"id": 3}, {"id": 4, "captions": ["a cat", "a dog"]}]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    assert main(["parse", "--vocab", str(tmp_path / "tags.txt"), "--synonyms", str(tmp_path / "syn.json"),
                 "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")]) == 0
    out = read_jsonl(tmp_path / "out.jsonl")
    assert [(row["id"], row["tags"]) for row in out] == [(1, ["cat", "dog"]), (2, ["teddy bear"]), (3, []),
                                                         (4, ["cat", "dog"]), (None, [])]
    assert "error" in out[2] and "error" in out[4] and "error" not in out[0]


def test_parse_lines_are_written_as_json_dumps_writes_them(tmp_path):
    (tmp_path / "tags.txt").write_text("dog\ncafé\n")
    lines = [{"id": "ça-1", "caption": "a dog at a café"}, {"id": 7, "captions": ["a dog", "a café, no cat"]},
             {"id": [1, 2], "caption": 5}]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["parse", "--vocab", str(tmp_path / "tags.txt"), "--input", str(tmp_path / "in.jsonl"),
                 "--output", str(tmp_path / "out.jsonl")]) == 0
    written = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert written[:2] == [json.dumps({"id": "ça-1", "tags": ["café", "dog"]}, ensure_ascii=False),
                           json.dumps({"id": 7, "tags": ["café", "dog"]}, ensure_ascii=False)]
    assert json.loads(written[2])["id"] == [1, 2] and "error" in json.loads(written[2])


def test_parse_answers_an_id_utf8_cannot_hold_with_an_error_line(tmp_path):
    (tmp_path / "tags.txt").write_text("dog\n")
    (tmp_path / "in.jsonl").write_text('{"id": "a", "caption": "a dog"}\n{"id": "b\\udc80", "caption": "a dog"}\n'
                                       '{"id": "c", "caption": "two dogs"}\n')
    assert main(["parse", "--vocab", str(tmp_path / "tags.txt"), "--input", str(tmp_path / "in.jsonl"),
                 "--output", str(tmp_path / "out.jsonl")]) == 0
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(row["id"], row["tags"]) for row in out] == [("a", ["dog"]), ("b\udc80", []), ("c", ["dog"])]
    assert "the id holds" in out[1]["error"]


def test_vocab_mines_from_a_jsonl_and_from_tars(tmp_path):
    captions = [{"caption": f"a {c} dog next to a traffic light"} for c in ("red", "big", "small", "brown")] * 3
    (tmp_path / "caps.jsonl").write_text("\n".join(json.dumps(c) for c in captions) + "\n")
    assert main(["vocab", "--input", str(tmp_path / "caps.jsonl"), "--out", str(tmp_path / "v.json"),
                 "--min-count", "3"]) == 0
    vocab = json.loads((tmp_path / "v.json").read_text())
    assert {"dog", "traffic light"} <= set(vocab["tags"]) and vocab["source"] == "mined"
    world = make_world(tmp_path / "w", n=60, shard_size=30)
    assert main(["vocab", "--input", str(world), "--out", str(tmp_path / "w.json"), "--min-count", "3"]) == 0
    assert "star" in json.loads((tmp_path / "w.json").read_text())["tags"]


@pytest.mark.parametrize("args, message", [
    (["run", "--input", "/nonexistent/in", "--output", "OUT"], "input /nonexistent/in does not exist"),
    (["run", "--input", ".", "--output", "OUT", "--set", "parse.nope=1"], "unknown config key parse.nope"),
    (["run", "--input", ".", "--output", "OUT", "--set", "runner.workers=zero"], "runner.workers must be int"),
    (["run", "--config", "/nonexistent.yaml", "--input", ".", "--output", "OUT"], "no config file /nonexistent.yaml"),
    (["parse", "--vocab", "/nonexistent.txt", "--input", "x", "--output", "y"], "cannot read tag list"),
])
def test_user_errors_are_one_line_before_anything_runs(tmp_path, args, message):
    args = [str(tmp_path / a) if a == "OUT" else a for a in args]
    result = tagmill(*args)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(error_lines) == 1 and message in error_lines[0], result.stderr
    assert not (tmp_path / "OUT").exists()


def test_run_prints_where_the_output_is(tmp_path):
    world = make_world(tmp_path / "w", n=20, shard_size=20)
    result = tagmill("run", "--input", str(world / "*.tar"), "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert "20 samples: 20 written, 0 rejected" in result.stdout
    assert str(tmp_path / "out" / "run.json") in result.stdout
    assert json.loads((tmp_path / "out" / "run.json").read_text())["vocabulary"]["source"] == "given"
