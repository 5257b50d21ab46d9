"""The GPU check script's `--quick` mode: a tiny RAM++ on the CPU through every measurement the full
check makes, so the script cannot rot between the sessions that have a GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_its_ram_measurements_on_a_tiny_model(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--quick"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    [row] = json.loads((tmp_path / "gpu_check_ram_quick.json").read_text())
    assert row["model"] == "tiny-ram-plus" and row["device"] == "cpu"
    assert min(row["infer_img_s"], row["handler_img_s"], row["train_img_s"]) > 0
