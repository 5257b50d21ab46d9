"""Timing a step on the CPU or a GPU, shared by the benchmarks."""

from __future__ import annotations

import time

import torch


def timed(step, steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls of `step` after one warm-up call (kernels chosen, memory allocated)."""
    step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - start


def train_rate(wrapped: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               targets: torch.Tensor, steps: int) -> float:
    """Images/s of training steps of a model wrapped with its loss (bf16 autocast on CUDA), as `tagmill train`
    takes them."""
    device = images.device

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = wrapped(images, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return len(images) * steps / timed(step, steps, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
