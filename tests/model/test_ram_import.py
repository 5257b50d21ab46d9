"""The official checkpoints against the reference data of `../shared/data/ram`: keys and shapes of the
full-size configs, the reference logits from the JPEG files through `import-model` and `tag --logits`,
and files the importer must refuse without running anything in them."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

from model_helpers import one_torch_thread  # noqa: F401
from ram_helpers import COCO_IMAGES, FIXTURES, RAM_DATA, first_lines, fixture_spec, write_tags
from tagmill.engine.images import decode_rgb
from tagmill.model.checkpoint import load_model
from tagmill.model.config import model_config
from tagmill.model.factory import build_model, image_transform
from tagmill.model.ram.keys import caption_branch_shapes, official_shapes
from tagmill.pipeline.cli import main

OFFICIAL = [("ram-swin-l-384", 4585, "ram_state_dict_keys.txt", 1042),
            ("ram-plus-swin-l-384", 4585, "ram_plus_state_dict_keys.txt", 402),
            ("tag2text-swin-b-384", 3429, "tag2text_state_dict_keys.txt", 1038)]


def _listed_shapes(name: str) -> dict[str, tuple[int, ...]]:
    path = RAM_DATA / "checkpoint_keys" / name
    if not path.is_file():
        pytest.skip(f"the official key lists are not at {path.parent} (reference data, not shipped with the repo)")
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    return {key: tuple(int(n) for n in shape.strip("()").split(",") if n.strip()) for key, shape in rows}


@pytest.mark.parametrize("name, tags, listing, count", OFFICIAL)
def test_official_configs_have_exactly_the_official_keys_and_shapes(name, tags, listing, count):
    expected = _listed_shapes(listing)
    config = model_config(name)
    with torch.device("meta"):  # Swin-L costs no memory here
        model = build_model(config, tags)
    mapped = {**official_shapes(model), **caption_branch_shapes(config.caption_branch)}
    assert len(expected) == count
    assert sorted(set(expected) - set(mapped)) == [] and sorted(set(mapped) - set(expected)) == []
    assert {key: shape for key, shape in mapped.items() if expected[key] != shape} == {}


# ---- the reference logits --------------------------------------------------------------------

@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict:
    """Each fixture checkpoint imported once with `tagmill import-model`."""
    spec = fixture_spec()
    work = tmp_path_factory.mktemp("ram")
    folders = {}
    for family, model in spec["models"].items():
        arguments = [str(FIXTURES / model["checkpoint"]), "--family", family, "--out", str(work / family),
                     "--tags", str(first_lines(model["tags"]["file"], model["tags"]["first_lines"],
                                               work / f"{family}_tags.txt"))]
        if "thresholds" in model:
            thresholds = model["thresholds"]
            path = first_lines(thresholds["file"], thresholds["first_lines"], work / f"{family}_thresholds.txt")
            arguments += ["--thresholds", str(path)]
        assert main(["import-model", *arguments]) == 0
        folders[family] = work / family
    return {"spec": spec, "folders": folders, "work": work}


@pytest.mark.parametrize("family", ["ram", "ram_plus", "tag2text"])
def test_tag_logits_from_the_jpegs_reproduce_the_reference(imported, family, capsys):
    spec = imported["spec"]
    images = [str(COCO_IMAGES / name) for name in spec["images"]]
    logits_path = imported["work"] / f"{family}_logits.npy"
    assert main(["tag", "--model", str(imported["folders"][family]), "--logits", str(logits_path), *images]) == 0
    assert capsys.readouterr().out.count("\n") >= len(images)
    logits = np.load(logits_path)
    reference = np.load(FIXTURES / spec["models"][family]["logits"])
    assert logits.dtype == np.float32 and logits.shape == reference.shape
    assert np.abs(logits - reference).max() <= spec["tolerance"]


@pytest.mark.parametrize("family", ["ram", "ram_plus", "tag2text"])
def test_encoder_and_head_match_the_reference_intermediates(imported, family):
    spec = imported["spec"]
    model, tags = load_model(imported["folders"][family])
    assert len(tags) == spec["models"][family]["tags"]["first_lines"]
    images = torch.from_numpy(np.load(FIXTURES / spec["images_384"]))
    with torch.no_grad():
        features, tokens = model.encode(images)
        states = model.head_states(tokens)
    for name, value in (("image_tokens", features), ("head_out", states)):
        reference = np.load(FIXTURES / f"{family}_{name}.npy")
        assert np.abs(value.numpy() - reference).max() <= spec["tolerance"], name


def test_preprocessing_of_the_jpegs_is_the_reference_preprocessing(imported):
    spec = imported["spec"]
    model, _ = load_model(imported["folders"]["ram"])
    transform = image_transform(model.config)
    images = torch.stack([transform(decode_rgb((COCO_IMAGES / name).read_bytes())) for name in spec["images"]])
    assert torch.equal(images, torch.from_numpy(np.load(FIXTURES / spec["images_384"])))


def test_ram_thresholds_come_from_the_official_file(imported):
    model, _ = load_model(imported["folders"]["ram"])
    official = [float(line) for line in (RAM_DATA / "ram_tag_list_threshold.txt").read_text().split()[:1000]]
    assert model.thresholds.tolist() == pytest.approx(official)


# ---- files to refuse -------------------------------------------------------------------------

class _Opens:
    """Unpickling this would create a file: a stand-in for a checkpoint that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


def _refused(arguments: list[str], capsys) -> str:
    assert main(["import-model", *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0, error
    return error


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path, capsys):
    marker = tmp_path / "ran"
    torch.save({"model": {"visual_encoder.norm.weight": torch.zeros(3), "hook": _Opens(marker)}}, tmp_path / "evil.pth")
    error = _refused([str(tmp_path / "evil.pth"), "--family", "ram", "--out", str(tmp_path / "model"),
                      "--tags", str(write_tags(tmp_path / "tags.txt", 3))], capsys)
    assert "refused" in error and "io.open" in error
    assert not marker.exists()
    assert not (tmp_path / "model").exists()


def test_a_truncated_checkpoint_is_one_clear_error(tmp_path, capsys):
    spec = fixture_spec()
    data = (FIXTURES / spec["models"]["ram"]["checkpoint"]).read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    error = _refused([str(tmp_path / "cut.pth"), "--family", "ram", "--out", str(tmp_path / "model"),
                      "--tags", str(write_tags(tmp_path / "tags.txt", 1000))], capsys)
    assert "truncated or not a PyTorch checkpoint" in error


def test_a_checkpoint_of_another_family_is_named(tmp_path, capsys):
    spec = fixture_spec()
    error = _refused([str(FIXTURES / spec["models"]["ram_plus"]["checkpoint"]), "--family", "tag2text",
                      "--out", str(tmp_path / "model"), "--tags", str(write_tags(tmp_path / "tags.txt", 1000))], capsys)
    assert "is a RAM++ checkpoint" in error and "--family ram_plus" in error
