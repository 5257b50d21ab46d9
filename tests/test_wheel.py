"""The wheel works without the source tree: built, installed into a fresh virtual environment, and run from
another folder through synth, run, train, tag and report, with the configs it ships."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(dist), str(ROOT)], check=True)
    return next(dist.glob("tagmill-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh environment holding only the wheel; the dependencies come from this environment's site-packages
    through a .pth file, whose own .pth files (this checkout's editable install among them) are not read."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    str(wheel)], check=True)
    return venv


def test_the_wheel_ships_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"tagmill/configs/{p.relative_to(ROOT / 'configs')}" for p in (ROOT / "configs").rglob("*")
               if p.suffix in {".yaml", ".json"}}
    assert shipped and shipped <= names
    assert not any(name.startswith(("tests/", "configs/", "benchmarks/")) for name in names)


def test_the_wheel_ships_the_report_script_and_the_review_page(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"tagmill/engine/report/browse.js", "tagmill/pipeline/review_page.html"} <= names


def test_installed_wheel_runs_the_engine_from_another_folder(installed, tmp_path):
    def tagmill(*args: str) -> str:
        env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        done = subprocess.run([installed / "bin" / "tagmill", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    located = subprocess.run([installed / "bin" / "python", "-c", "import tagmill.configs; print(tagmill.configs.__file__)"],
                             cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert located.startswith(str(installed))
    tagmill("synth", "--out", "world", "--n", "80", "--seed", "1")
    tagmill("run", "--input", "world", "--output", "out")
    trained = tagmill("train", "--shards", "out", "--out", "model", "--config", "configs/train/tiny.yaml",
                      "--set", "epochs=1", "--set", "workers=0")
    assert "held-out mAP" in trained
    assert json.loads((tmp_path / "model" / "tagger.json").read_text())["config"]["name"] == "tiny"
    image = _first_image(tmp_path / "world" / "00000.tar", tmp_path)
    assert tagmill("tag", "--model", "model", str(image)).startswith(f"{image}: ")
    (tmp_path / "out" / "report.json").unlink()
    tagmill("report", "out")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["counts"]["written"] == 80


def _first_image(tar_path: Path, folder: Path) -> Path:
    with tarfile.open(tar_path) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".jpg"))
        image = folder / Path(member.name).name
        image.write_bytes(io.BytesIO(tar.extractfile(member).read()).getvalue())
    return image
