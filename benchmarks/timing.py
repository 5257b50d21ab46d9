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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
