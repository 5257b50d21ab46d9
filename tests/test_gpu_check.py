"""The GPU check script's `--quick` mode: a tiny RAM++ on the CPU through every measurement the full
check makes, and torchrun training with 2 processes on the CPU, so the script cannot rot between the
sessions that have a GPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_checks_quick_mode_runs_a_tiny_ram_and_torchrun_training_on_the_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--quick"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    [row] = json.loads((tmp_path / "gpu_check_ram_quick.json").read_text())
    assert row["model"] == "tiny-ram-plus" and row["device"] == "cpu"
    assert min(row["infer_img_s"], row["handler_img_s"], row["train_img_s"]) > 0
    distributed = json.loads((tmp_path / "gpu_check_distributed.json").read_text())
    assert distributed["processes"] == 2 and distributed["train_samples"] > 0
