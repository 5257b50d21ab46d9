"""Benchmark: the RAM families' throughput, images/s: bf16 inference of the model alone, inference from
JPEG bytes through the Generate stage's handler, and fine-tuning steps.

    python benchmarks/bench_ram.py [--quick] [--device cuda] [--batch 128] [--train-batch 32] [--json OUT]

Full size: random-weight models built from the shipped configs (`ram-plus-swin-l-384` with RAM's
4,585 tags, `tag2text-swin-b-384` with Tag2Text's 3,429), at 384 px; the handler reads real COCO
JPEGs from `../shared/data/coco/images` when they are there, else synthetic 640×480 ones. Targets on
one H100/H200: RAM++ Swin-L >= 1,000 images/s (model only) and >= 600 (from JPEG bytes), Tag2Text
Swin-B >= 2,000 (model only). `--quick` runs a tiny RAM++ on the CPU in seconds, so the script is
exercised by the test suite.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import timed, train_rate
from PIL import Image
from timm.loss import AsymmetricLossMultiLabel

from tagmill.model.checkpoint import save_model
from tagmill.model.config import model_config
from tagmill.model.factory import build_model
from tagmill.model.ram.config import ram_config
from tagmill.model.train import TaggerWithLoss, _checkpoint_activations
from tagmill.pipeline.handlers import TaggerHandler

COCO_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco" / "images"
FULL = [("ram-plus-swin-l-384", 4585, True, 1000.0, 600.0), ("tag2text-swin-b-384", 3429, False, 2000.0, None)]
TINY = {"name": "tiny-ram-plus", "family": "ram_plus", "image_size": 64,
        "swin": {"embed_dim": 8, "depths": [2, 2, 2], "heads": [1, 2, 4], "window": 4},
        "head": {"hidden": 32, "layers": 1, "heads": 4, "intermediate": 64}, "embed_dim": 24,
        "descriptions_per_tag": 3, "caption_branch": {"layers": 0}}


def main() -> None:
    args = _arguments()
    device = torch.device("cpu" if args.quick else args.device)
    models = [(ram_config(TINY), 50, True, None, None)] if args.quick else [
        (model_config(name), tags, handler, *targets) for name, tags, handler, *targets in FULL]
    rows = [measure(config, tags, device, args, handler, targets) for config, tags, handler, *targets in models]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny RAM++ on the CPU: checks the script runs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=128, help="inference batch")
    parser.add_argument("--train-batch", type=int, default=32, help="fine-tuning batch (gradient checkpointing on)")
    parser.add_argument("--steps", type=int, default=10, help="timed batches per measurement")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.train_batch, args.steps = 4, 4, 2
    return args


def measure(config, num_tags: int, device: torch.device, args, handler: bool, targets) -> dict:
    """One model's rates, with its targets and whether each is met (full size on a GPU only)."""
    torch.manual_seed(0)
    model = build_model(config, num_tags).to(device).eval()
    row = {"model": config.name, "device": str(device), "tags": num_tags, "batch": args.batch,
           "infer_img_s": _infer_rate(model, config.image_size, args.batch, device, args.steps)}
    if handler:
        row["handler_img_s"] = _handler_rate(model, device, args)
    row["train_batch"] = args.train_batch
    row["train_img_s"] = _train_rate(model, config.image_size, args.train_batch, device, args.steps)
    infer_target, handler_target = targets
    if infer_target:
        row["infer_target"], row["infer_pass"] = infer_target, row["infer_img_s"] >= infer_target
    if handler_target:
        row["handler_target"], row["handler_pass"] = handler_target, row["handler_img_s"] >= handler_target
    return row


def _infer_rate(model, size: int, batch: int, device: torch.device, steps: int) -> float:
    images = torch.randn(batch, 3, size, size, device=device)

    @torch.no_grad()
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            model(images)
    return batch * steps / timed(step, steps, device)


def _handler_rate(model, device: torch.device, args) -> float:
    """From JPEG bytes to tag probabilities through the Generate stage's ModelHandler."""
    with tempfile.TemporaryDirectory() as folder:
        save_model(model.cpu(), folder, [f"tag {i}" for i in range(model.num_tags)])
        model.to(device)
        handler = TaggerHandler(folder, str(device), args.batch, cpu_threads=4)
        loaded = handler.load_model()
        batch = _jpegs(args.batch)
        seconds = timed(lambda: list(handler.run_inference(batch, loaded)), args.steps, device)
    return args.batch * args.steps / seconds


def _jpegs(count: int) -> list[bytes]:
    """Real COCO JPEGs when the reference data is there (repeated to `count`), else synthetic 640×480 ones."""
    files = sorted(COCO_IMAGES.glob("*.jpg"))
    if files:
        return [files[i % len(files)].read_bytes() for i in range(count)]
    rng = np.random.default_rng(0)
    made = []
    for _ in range(min(count, 16)):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
        made.append(buffer.getvalue())
    return [made[i % len(made)] for i in range(count)]


def _train_rate(model, size: int, batch: int, device: torch.device, steps: int) -> float:
    """Fine-tuning steps as `tagmill train` takes them: RAM's asymmetric loss, AdamW, bf16, checkpointing."""
    model.train()
    _checkpoint_activations(model)
    wrapped = TaggerWithLoss(model, AsymmetricLossMultiLabel(gamma_neg=7, gamma_pos=0, clip=0.05))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-6, weight_decay=0.05)
    images = torch.randn(batch, 3, size, size, device=device)
    targets = (torch.rand(batch, model.num_tags, device=device) < 0.01).float()
    rate = train_rate(wrapped, optimizer, images, targets, steps)
    model.eval()
    return rate


if __name__ == "__main__":
    main()
