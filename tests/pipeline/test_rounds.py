"""`tagmill rounds`: round 0 parses and trains, round k generates with round k-1's tagger; resumable."""

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import make_world, needs_chromium, render_in_chromium, shard_digests
from tagmill.engine import storage
from tagmill.engine.config import ConfigError
from tagmill.model.train import load_train_config
from tagmill.pipeline.cli import main
from tagmill.engine.report.rounds_page import write_rounds_page
from tagmill.pipeline.rounds import ROUNDS_JSON, format_rounds, load_rounds_config, round_run_config

CONFIGS = Path(__file__).parents[2] / "configs"
SYNTHETIC = CONFIGS / "rounds" / "synthetic.yaml"
NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "audit.ipynb"
FAST = ["--set", "train.epochs=1", "--set", "train.workers=0", "--set", "train.holdout=0.2",
        "--set", "run.generate.device=cpu"]


def rounds_args(world: Path, work: Path, *extra: str) -> list[str]:
    return ["rounds", "--config", str(SYNTHETIC), "--input", str(world), "--work", str(work), "--rounds", "1",
            *FAST, *extra]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("world"), 120, shard_size=60, seed=5,
                      hallucination=0.2, omission=0.3, wrong_attribute=0.1)


@pytest.fixture(scope="module")
def work(world, tmp_path_factory):
    work = tmp_path_factory.mktemp("rounds") / "work"
    assert main(rounds_args(world, work, "--set", "warm_start.enabled=true", "--set", "warm_start.lr=0.001")) == 0
    return work


def test_the_synthetic_config_reads_its_run_and_training_files():
    config = load_rounds_config(SYNTHETIC, ["train.epochs=3"])
    assert config.run.stages == ["parse", "generate", "clean"]  # from configs/engine.yaml
    assert not config.run.clean.rules.uses_clip and config.run.clean.rules.support.enabled
    assert config.train.model == "tiny-fine" and config.train.epochs == 3 and config.train.thresholds == "mixture"


def test_the_demo_config_trains_briefly_and_continues_each_round():
    config = load_rounds_config(CONFIGS / "rounds" / "demo.yaml")
    assert config.train.model == "tiny" and config.train.epochs == 5 and config.train.workers == 0
    assert config.warm_start.enabled and config.warm_start.epochs == 1
    assert config.run.generate.margin == config.run.clean.rules.support.margin == 0.1
    assert round_run_config(config, "MODEL").stages == ["parse", "generate", "clean"]
    assert "configs/rounds/demo.yaml" in (CONFIGS.parent / "Makefile").read_text()


def test_a_shipped_rounds_config_is_found_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_rounds_config("rounds/synthetic.yaml") == load_rounds_config(SYNTHETIC)


def test_a_rounds_config_on_s3_starts_its_sections_from_files_beside_it(s3_bucket):
    for name in ("engine.yaml", "train/tiny.yaml", "rounds/demo.yaml"):
        storage.write_text(f"{s3_bucket}/configs/{name}", (CONFIGS / name).read_text())  # from: ../engine.yaml
    assert load_rounds_config(f"{s3_bucket}/configs/rounds/demo.yaml") == load_rounds_config(CONFIGS / "rounds/demo.yaml")
    storage.write_text(f"{s3_bucket}/other/rounds.yaml",
                       f"run:\n  from: {s3_bucket}/configs/engine.yaml\n  generate: {{margin: 0.2}}\n")
    config = load_rounds_config(f"{s3_bucket}/other/rounds.yaml")
    assert config.run.stages == ["parse", "generate", "clean"] and config.run.generate.margin == 0.2
    assert config.train == load_train_config(None)


def test_rounds_without_a_train_section_train_as_tagmill_train_does(tmp_path):
    (tmp_path / "rounds.yaml").write_text("run:\n  stages: [parse]\n")
    assert load_rounds_config(tmp_path / "rounds.yaml").train == load_train_config(None)


def test_round_zero_runs_what_it_has_and_later_rounds_generate_with_the_last_tagger():
    config = load_rounds_config(SYNTHETIC)
    assert round_run_config(config, None).stages == ["parse"]  # no tagger and no CLIP rule yet
    later = round_run_config(config, "work/round-0/model")
    assert later.stages == ["parse", "generate", "clean"] and later.generate.model == "work/round-0/model"
    with_clip = load_rounds_config(SYNTHETIC, ["run.clean.rules.similarity.enabled=true", "run.clean.clip=c"])
    assert round_run_config(with_clip, None).stages == ["parse", "clean"]
    with pytest.raises(ConfigError, match="clean.clip"):
        round_run_config(load_rounds_config(SYNTHETIC, ["run.clean.rules.outliers.enabled=true"]), None)


@pytest.mark.slow
def test_rounds_with_input_and_work_on_s3_give_the_local_rounds(world, work, s3_bucket):
    for path in world.iterdir():
        storage.write_bytes(f"{s3_bucket}/world/{path.name}", path.read_bytes())
    remote = f"{s3_bucket}/work"
    assert main(rounds_args(f"{s3_bucket}/world", remote, "--set", "warm_start.enabled=true",  # as `work` was
                            "--set", "warm_start.lr=0.001")) == 0
    local_history = json.loads((work / ROUNDS_JSON).read_text())
    remote_history = json.loads(storage.read_text(f"{remote}/{ROUNDS_JSON}"))
    figures = ("samples", "tags_per_sample", "drops_by_rule", "model_map", "model_map_truth", "truth_metrics")
    assert [{k: e[k] for k in figures} for e in remote_history] == [{k: e[k] for k in figures} for e in local_history]
    for path in sorted((work / "round-1" / "shards").iterdir()):
        if path.suffix in (".tar", ".parquet"):  # the data; stats files name the model's folder
            assert storage.read_bytes(f"{remote}/round-1/shards/{path.name}") == path.read_bytes(), path.name
    assert "round-1/report.html" in storage.read_text(f"{remote}/report.html")


@pytest.mark.slow
def test_each_round_has_its_run_model_and_figures(work):
    history = json.loads((work / ROUNDS_JSON).read_text())
    assert [entry["round"] for entry in history] == [0, 1]
    assert history[0]["stages"] == ["parse"] and history[1]["stages"] == ["parse", "generate", "clean"]
    for entry in history:
        folder = work / entry["folder"]
        assert (folder / "shards").is_dir() and (folder / "report.html").is_file()
        assert (folder / "config.yaml").is_file() and (folder / "model" / "tagger.json").is_file()
        assert 0 <= entry["model_map"] <= 1 and 0 <= entry["model_map_truth"] <= 1
        assert set(entry["truth_metrics"]) == {"precision", "recall", "f1"}
        report = json.loads((folder / "report.json").read_text())
        assert entry["truth_metrics"]["recall"] == report["truth_metrics"]["cleaned"]["recall"]
    generated = json.loads((work / "round-1" / "run.json").read_text())["config"]["generate"]["model"]
    assert generated == str(work / "round-0" / "model")
    trained = json.loads((work / "round-1" / "model" / "train.json").read_text())["config"]
    assert trained["init_from"] == generated and trained["target_sources"] == []  # warm-started
    assert trained["lr"] == 0.001 and trained["epochs"] == 1
    page = (work / "report.html").read_text()
    assert "round-0/report.html" in page and "round-1/report.html" in page and "data:image/png;base64" in page


@pytest.mark.slow
def test_a_rerun_continues_from_the_last_complete_step(world, work, capsys):
    round_one = work / "round-1"
    written = shard_digests(round_one)
    for path in (round_one / "shards").glob("00001*"):
        path.unlink()  # a crash that lost a shard of the last round, before its model was trained
    for path in sorted((round_one / "model").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    round_zero_model = (work / "round-0" / "model" / "model.safetensors").stat().st_mtime_ns
    assert main(rounds_args(world, work, "--set", "warm_start.enabled=true", "--set", "warm_start.lr=0.001")) == 0
    assert shard_digests(round_one) == written
    assert (round_one / "model" / "train.json").is_file()
    assert (work / "round-0" / "model" / "model.safetensors").stat().st_mtime_ns == round_zero_model
    assert "precision" in capsys.readouterr().out  # the per-round table


@pytest.mark.slow
def test_the_audit_notebook_runs_on_a_rounds_folder(work, monkeypatch):
    monkeypatch.setenv("TAGMILL_WORK", str(work))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # raises if a cell fails
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 2  # the round-over-round curves and the example samples


@pytest.mark.slow
@needs_chromium
def test_the_rounds_page_renders_in_headless_chromium(work, tmp_path):
    assert render_in_chromium(work / "report.html", tmp_path / "rounds.png") == []


def test_a_missing_truth_file_is_a_clear_error(world, tmp_path, capsys):
    assert main(rounds_args(world, tmp_path / "work", "--truth", str(tmp_path / "nothing.jsonl"))) == 2
    assert "--truth" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_rounds_without_a_truth_show_dashes_and_say_there_is_nothing_to_score(tmp_path):
    history = [{"round": 0, "folder": "round-0", "stages": ["parse"], "samples": 10, "drops_by_rule": {},
                "tags_per_sample": {"parsed": 2.0, "generated": 2.0, "cleaned": 2.0}, "model_map": 0.5}]
    assert format_rounds(history).splitlines()[1].split() == ["0", "2.00", "0", "0.500", "-", "-", "-", "-"]
    page = Path(write_rounds_page(history, str(tmp_path))).read_text()
    assert "data:image/png;base64" in page  # the plots across rounds, the truth's empty
    assert "Final tags against the truth" not in page and "round-0/report.html" in page
