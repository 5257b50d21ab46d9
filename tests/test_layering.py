"""The layering of DESIGN.md, checked in fresh interpreters: engine never pulls in torch or Beam, model
never pulls in Beam, and the folders import only as packages of the tagmill namespace."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

IMPORT_ALL = textwrap.dedent("""
    import importlib, importlib.abc, pkgutil, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Block())
    package = importlib.import_module({package!r})
    modules = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    for name in modules:
        importlib.import_module(name)
    print(",".join(modules))
    print(",".join(m for m in {forbidden!r} if m in sys.modules))
""")


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH, so that only the installed distribution is importable."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=120)


def imported_and_leaked(package: str, forbidden: tuple[str, ...], cwd: Path,
                        blocked: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Import every module of `package` with `blocked` packages made unimportable; which of
    `forbidden` ended up imported anyway."""
    result = python(IMPORT_ALL.format(package=package, forbidden=forbidden, blocked=blocked), cwd)
    assert result.returncode == 0, result.stderr
    modules, leaked = (line.split(",") if line else [] for line in result.stdout.splitlines()[-2:])
    return modules, leaked


def test_engine_imports_no_beam(tmp_path):
    modules, leaked = imported_and_leaked("tagmill.engine", ("apache_beam",), tmp_path)
    assert {"tagmill.engine.vocab", "tagmill.engine.records", "tagmill.engine.parse.mine"} <= set(modules)
    assert leaked == []


def test_engine_works_without_torch(tmp_path):
    """spaCy's thinc imports torch when it is installed; the engine itself must not need it."""
    modules, leaked = imported_and_leaked("tagmill.engine", ("torch",), tmp_path, blocked=("torch",))
    assert "tagmill.engine.parse.parser" in modules and leaked == []


def test_the_engine_loads_no_torch_where_torch_is_installed(tmp_path):
    """spaCy loads without torch (thinc would import it), and shards are written without webdataset."""
    _, leaked = imported_and_leaked("tagmill.engine", ("torch", "webdataset"), tmp_path)
    assert leaked == []


SPACY_COMMAND_LINE = textwrap.dedent("""
    import sys
    from tagmill.engine.parse.parser import CaptionParser
    print("spacy.cli" in sys.modules, "weasel" in sys.modules, "typer" in sys.modules)
    import spacy
    print(callable(spacy.cli.download), spacy.info()["spacy_version"] == spacy.__version__)
""")


def test_spacy_loads_without_its_command_line_which_still_imports_when_asked_for(tmp_path):
    result = python(SPACY_COMMAND_LINE, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["False False False", "True True"]


PARSE_ONLY_RUN = textwrap.dedent("""
    import sys
    from tagmill.pipeline.cli import main

    assert main(["synth", "--out", "world", "--n", "40", "--shard-size", "20"]) == 0
    assert main(["run", "--input", "world", "--output", "out"]) == 0
    print(",".join(m for m in ("torch", "webdataset", "timm", "transformers", "open_clip", "faiss") if m in sys.modules))
    import torch, thinc.compat
    print(torch.ones(1).item(), thinc.compat.has_torch)
""")


def test_a_parse_only_run_loads_nothing_of_the_model_stack(tmp_path):
    result = python(PARSE_ONLY_RUN, tmp_path)
    assert result.returncode == 0, result.stderr
    leaked, after = result.stdout.splitlines()[-2:]
    assert leaked == ""
    assert after == "1.0 False"  # torch imports afterwards; spaCy was loaded without it


def test_engine_source_never_imports_torch_or_beam():
    engine = Path(__file__).resolve().parents[1] / "engine"
    offending = [f"{path.name}:{number}" for path in sorted(engine.rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), start=1)
                 if line.lstrip().startswith(("import torch", "from torch", "import apache_beam", "from apache_beam"))]
    assert offending == []


def test_model_imports_no_beam(tmp_path):
    _, leaked = imported_and_leaked("tagmill.model", ("apache_beam",), tmp_path)
    assert leaked == []


@pytest.mark.parametrize("bare", ["engine", "pipeline", "model"])
def test_bare_top_level_names_do_not_import(tmp_path, bare):
    result = python(f"import {bare}", tmp_path)
    assert result.returncode != 0
    assert f"No module named '{bare}'" in result.stderr


@pytest.mark.parametrize("folder", ["engine", "model", "pipeline"])
def test_folders_are_packages_of_the_tagmill_namespace(folder):
    module = importlib.import_module(f"tagmill.{folder}")
    assert module.__name__ == f"tagmill.{folder}"
    spec = importlib.util.find_spec(f"tagmill.{folder}")
    assert Path(spec.origin).parts[-2:] == (folder, "__init__.py")


def test_distribution_provides_only_the_tagmill_namespace():
    top_level = importlib.metadata.distribution("tagmill").read_text("top_level.txt")
    assert top_level is not None and top_level.split() == ["tagmill"]
