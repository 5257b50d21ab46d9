"""Benchmark: model-only training and inference throughput of tagger configs (images/s).

    python benchmarks/bench_train.py [--models tiny vit-b16-384] [--device cpu|cuda] [--tags 4585]
                                     [--batch 64] [--infer-batch 128] [--steps 5] [--json OUT]

Random images of each model's size and random targets, so the figure is the model's own cost
(data loading is measured by `tagmill train`'s progress bar). On CUDA, bf16 autocast is on, as in
training. Models with text queries get random 512-d tag embeddings. Target (issue "tagging model"):
vit-b16-384 inference >= 2,500 images/s at batch 128 in bf16 on one H100/H200.
"""

from __future__ import annotations

import argparse
import json

import torch
from timing import timed, train_rate
from timm.loss import AsymmetricLossMultiLabel

from tagmill.model.config import model_config
from tagmill.model.tagger import Tagger
from tagmill.model.train import TaggerWithLoss

TEXT_DIM = 512


def main() -> None:
    args = _arguments()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    results = [measure(name, device, args) for name in args.models]
    for row in results:
        print(f"{row['model']:>14} on {row['device']}: train {row['train_img_s']:8.2f} img/s (batch {row['batch']}), "
              f"inference {row['infer_img_s']:8.2f} img/s (batch {row['infer_batch']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny", "vit-b16-384"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tags", type=int, default=4585, help="tags scored (RAM's vocabulary size by default)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--infer-batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--json")
    return parser.parse_args()


def measure(name: str, device: torch.device, args: argparse.Namespace) -> dict:
    config = model_config(name)
    text = torch.randn(args.tags, TEXT_DIM) if config.head.queries == "text" else None
    model = Tagger(config, args.tags, text).to(device)
    batch = args.batch if device.type == "cuda" or config.image_size <= 64 else min(args.batch, 4)
    infer_batch = args.infer_batch if device.type == "cuda" or config.image_size <= 64 else min(args.infer_batch, 8)
    return {"model": name, "device": str(device), "tags": args.tags, "batch": batch, "infer_batch": infer_batch,
            "train_img_s": _train_rate(model, config.image_size, batch, device, args.steps),
            "infer_img_s": _infer_rate(model, config.image_size, infer_batch, device, args.steps)}


def _train_rate(model: Tagger, size: int, batch: int, device: torch.device, steps: int) -> float:
    wrapped = TaggerWithLoss(model, AsymmetricLossMultiLabel(gamma_neg=7, gamma_pos=0, clip=0.05)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, size, size, device=device)
    targets = (torch.rand(batch, model.num_tags, device=device) < 0.01).float()
    return train_rate(wrapped, optimizer, images, targets, steps)


@torch.no_grad()
def _infer_rate(model: Tagger, size: int, batch: int, device: torch.device, steps: int) -> float:
    model.eval()
    images = torch.randn(batch, 3, size, size, device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            model(images)

    return batch * steps / timed(step, steps, device)


if __name__ == "__main__":
    main()
