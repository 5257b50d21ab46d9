#!/usr/bin/env bash
# The GPU check, for one lent H100/H200 (torch, timm and transformers are there; carry the other
# pure-Python wheels tagmill needs):
# - the ViT-B/16 @ 384 tagger: bf16 inference at batch 128 (target >= 2,500 images/s, model only)
#   and one training step's throughput;
# - RAM++ Swin-L @ 384 (random weights, the shipped config, 4,585 tags): bf16 inference at batch 128,
#   model only (target >= 1,000 images/s) and from JPEG bytes through the Generate handler (>= 600);
#   Tag2Text Swin-B @ 384 (>= 2,000, model only); and fine-tuning steps' images/s of both.
# - cluster scale: `tagmill train` under torchrun, one process per GPU with NCCL, on a small synthetic
#   run's shards; and faiss k-means on the GPU where a faiss GPU build is installed (tagmill[gpu]).
# Results as JSON in $OUT (or here). `--quick` runs a tiny RAM++ on the CPU instead, and the torchrun
# training with 2 processes on the CPU (gloo): the test suite runs it so the script keeps working.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"

work=""
trap 'rm -rf "$work"' EXIT

distributed_training() {  # DEVICE PROCESSES: torchrun's processes train together; train.json says how many
    work="$(mktemp -d)"
    tagmill synth --out "$work/world" --n 600 --seed 0 --shard-size 100 >/dev/null
    tagmill run --input "$work/world" --output "$work/run" >/dev/null
    torchrun --standalone --nproc-per-node "$2" -m tagmill.pipeline.cli train --shards "$work/run" \
        --out "$work/model" --set device="$1" --set epochs=1 --set workers=0 >/dev/null
    python - "$work/model/train.json" "$1" "$2" "$out/gpu_check_distributed.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
row = {"device": sys.argv[2], "processes": summary["config"]["nproc"], "train_samples": summary["train_samples"],
       "holdout_map": summary["holdout"]["mAP"]}
json.dump(row, open(sys.argv[4], "w"))
verdict = "PASS" if row["processes"] == int(sys.argv[3]) else "FAIL"
print(f"torchrun training on {row['device']}, {row['processes']} processes: {verdict} ({row})")
sys.exit(verdict != "PASS")
PY
}

if [[ "${1:-}" == "--quick" ]]; then
    python benchmarks/bench_ram.py --quick --json "$out/gpu_check_ram_quick.json"
    distributed_training cpu 2
    exit 0
fi
PYTHONPATH="${PYTHONPATH:-}" python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible"
print(torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
python benchmarks/bench_train.py --device cuda --models vit-b16-384 tiny --tags 4585 \
    --batch 64 --infer-batch 128 --steps 20 --json "$out/gpu_check.json"
python - "$out/gpu_check.json" <<'PY'
import json, sys
rows = {r["model"]: r for r in json.load(open(sys.argv[1]))}
rate = rows["vit-b16-384"]["infer_img_s"]
print(f"vit-b16-384 bf16 inference at batch 128: {rate:.0f} img/s (target >= 2500): {'PASS' if rate >= 2500 else 'FAIL'}")
PY
python benchmarks/bench_ram.py --device cuda --batch 128 --train-batch 32 --steps 10 --json "$out/gpu_check_ram.json"
python - "$out/gpu_check_ram.json" <<'PY'
import json, sys
for row in json.load(open(sys.argv[1])):
    for kind in ("infer", "handler"):
        if f"{kind}_target" in row:
            verdict = "PASS" if row[f"{kind}_pass"] else "FAIL"
            print(f"{row['model']} bf16 {kind} at batch {row['batch']}: {row[f'{kind}_img_s']:.0f} img/s "
                  f"(target >= {row[f'{kind}_target']:.0f}): {verdict}")
    print(f"{row['model']} fine-tuning at batch {row['train_batch']}: {row['train_img_s']:.0f} img/s")
PY
distributed_training cuda "$(python -c 'import torch; print(torch.cuda.device_count())')"
python - <<'PY'
import time

import numpy as np

from tagmill.engine.clean import fit_clusters, kmeans_on_gpu
from tagmill.engine.config import load_config

rules = load_config(None).clean.rules.outliers
points = np.random.default_rng(0).standard_normal((200_000, 512)).astype(np.float32)
for gpu in (False, True) if kmeans_on_gpu("cuda") else (False,):
    started = time.perf_counter()
    fit_clusters(points, rules, seed=0, gpu=gpu)
    print(f"faiss k-means of 200,000 x 512 on the {'GPU' if gpu else 'CPU'}: {time.perf_counter() - started:.2f} s")
PY
