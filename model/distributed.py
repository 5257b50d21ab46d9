"""Training on several processes: where this process stands among them, starting them, and talking to them.

A process started by `torchrun` (or by `launch`, which starts processes on this machine as
`torchrun --standalone` would) finds its rank and the world's size in the environment torchrun sets
(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and joins a process group:
NCCL on CUDA, gloo on the CPU. A process nothing started is a world of one, with no process group.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist

WAIT_FOR_MAIN = timedelta(hours=1)  # the others wait while the first process alone evaluates and writes


def launched() -> bool:
    """Whether torchrun (or `launch`) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch(nproc: int, function: Callable, *args) -> Any:
    """`function(*args)` in `nproc` processes on this machine, started by torch's elastic launcher on a
    free loopback port as `torchrun --standalone --nproc-per-node nproc` would; what the first returned."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    return elastic_launch(config, function)(*args)[0]


@dataclass(frozen=True)
class World:
    """This process among those training together: its rank, their number, and its device."""

    rank: int = 0
    size: int = 1
    local_size: int = 1  # processes on this machine
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """The first process, which alone writes checkpoints, metrics and the model."""
        return self.rank == 0

    def seed(self, base: int) -> int:
        """A seed of this process's own: `base` itself in a world of one."""
        return base * self.size + self.rank

    def synchronized(self, module: torch.nn.Module) -> torch.nn.Module:
        """The module under DistributedDataParallel, which averages its gradients over the processes."""
        if self.size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def align_buffers(self, module: torch.nn.Module) -> None:
        """The first process's buffers (batch-norm statistics) in every process's module: under
        DistributedDataParallel each training step starts from the first's, then updates its own."""
        if self.size > 1:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def sum(self, value: int) -> int:
        """`value` summed over every process."""
        if self.size == 1:
            return value
        total = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(total)
        return int(total.item())

    def gather(self, item: Any) -> list | None:
        """Every process's `item`, in rank order, in the first process; None in the others."""
        if self.size == 1:
            return [item]
        gathered = [None] * self.size if self.main else None
        dist.gather_object(item, gathered, dst=0)
        return gathered


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[World]:
    """This process's World for the block, in a process group when torchrun (or `launch`) started it;
    on CUDA each process of a machine takes the GPU of its local rank."""
    if not launched():
        yield World(device=device)
        return
    world = _world_from_environment(device)
    if world.device.type == "cuda":
        torch.cuda.set_device(world.device)
    dist.init_process_group("nccl" if world.device.type == "cuda" else "gloo", timeout=WAIT_FOR_MAIN)
    try:
        yield world
    finally:
        dist.destroy_process_group()


def _world_from_environment(device: torch.device) -> World:
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        if local_rank >= gpus:
            raise ValueError(f"process {local_rank} of this machine has no GPU of its own ({gpus} GPUs): "
                             f"start at most {gpus} processes per machine, or train on the CPU (device=cpu)")
        device = torch.device("cuda", local_rank)
    return World(rank=int(os.environ["RANK"]), size=int(os.environ["WORLD_SIZE"]),
                 local_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)), device=device)
