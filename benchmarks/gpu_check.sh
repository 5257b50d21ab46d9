#!/usr/bin/env bash
# The GPU check, for one lent H100/H200 (torch, timm and transformers are there; carry the other
# pure-Python wheels tagmill needs):
# - the ViT-B/16 @ 384 tagger: bf16 inference at batch 128 (target >= 2,500 images/s, model only)
#   and one training step's throughput;
# - RAM++ Swin-L @ 384 (random weights, the shipped config, 4,585 tags): bf16 inference at batch 128,
#   model only (target >= 1,000 images/s) and from JPEG bytes through the Generate handler (>= 600);
#   Tag2Text Swin-B @ 384 (>= 2,000, model only); and fine-tuning steps' images/s of both.
# Results as JSON in $OUT (or here). `--quick` runs a tiny RAM++ on the CPU instead, in seconds:
# the test suite runs it so the script keeps working.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
if [[ "${1:-}" == "--quick" ]]; then
    python benchmarks/bench_ram.py --quick --json "$out/gpu_check_ram_quick.json"
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
