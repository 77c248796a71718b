"""Several processes through PyTorch's own engine: `torchrun` starts them and sets RANK,
LOCAL_RANK and WORLD_SIZE; `torch.distributed` connects them (gloo on CPUs, nccl on GPUs);
`DistributedDataParallel` averages gradients during backward. Nothing here is home-made beyond
reading those variables.

    torchrun --nproc-per-node 2 -m cnnatlas train lenet5                 # one machine
    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 4 \\
             --rdzv-backend c10d --rdzv-endpoint HOST:29400 -m cnnatlas train resnet20   # each machine
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def from_environment() -> DistContext:
    """What torchrun set in the environment (one process when nothing was)."""
    env = os.environ
    return DistContext(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def init_distributed(device_type: str) -> DistContext:
    """Join the process group torchrun prepared: nccl on GPUs, gloo on CPUs."""
    ctx = from_environment()
    if ctx.enabled and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend=backend)
    return ctx


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over processes (in place; no-op for one process)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's `obj`, on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()
