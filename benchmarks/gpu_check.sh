#!/usr/bin/env bash
# The tagger's GPU check, for one lent H100/H200 (torch, timm and transformers are there; carry the
# other pure-Python wheels tagmill needs). Prints the ViT-B/16 @ 384 tagger's bf16 inference rate at
# batch 128 (target >= 2,500 images/s, model only) and one training step's throughput, as JSON too.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu_check.json"
PYTHONPATH="${PYTHONPATH:-}" python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible"
print(torch.cuda.get_device_name(0), "torch", torch.__version__)
PY
python benchmarks/bench_train.py --device cuda --models vit-b16-384 tiny --tags 4585 \
    --batch 64 --infer-batch 128 --steps 20 --json "$out"
python - "$out" <<'PY'
import json, sys
rows = {r["model"]: r for r in json.load(open(sys.argv[1]))}
rate = rows["vit-b16-384"]["infer_img_s"]
print(f"vit-b16-384 bf16 inference at batch 128: {rate:.0f} img/s (target >= 2500): {'PASS' if rate >= 2500 else 'FAIL'}")
PY
