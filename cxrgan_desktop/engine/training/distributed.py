"""torch.distributed for training under ``torchrun``: DDP on NCCL (GPUs) or gloo (CPU).

Every rank runs the same loop on its share of each global batch; DistributedDataParallel
averages the gradients, so the networks stay identical on all ranks. Rank 0 alone writes
files; the random generators of all ranks are gathered into its checkpoint so that a
resumed run continues exactly; a stop requested on any rank stops all of them together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def current() -> DistributedContext:
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size())
    return DistributedContext()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def initialise(device_name: str) -> tuple[DistributedContext, str]:
    """Join the process group torchrun describes; returns the context and this rank's device.

    NCCL with one GPU per process when CUDA is used, gloo on CPU.
    """
    use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return current(), f"cuda:{local}"
    return current(), "cpu"


def wrap(module: nn.Module, context: DistributedContext) -> nn.Module:
    """DDP when distributed; unused parameters are expected (layers not yet grown)."""
    if not context.active:
        return module
    return DistributedDataParallel(module, find_unused_parameters=True)


def any_rank_stopping(flag: bool, context: DistributedContext, device: torch.device) -> bool:
    if not context.active:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_states(state: torch.Tensor, context: DistributedContext) -> list[torch.Tensor]:
    if not context.active:
        return [state]
    states: list = [None] * context.world
    dist.all_gather_object(states, state)
    return states


def barrier(context: DistributedContext) -> None:
    if context.active:
        dist.barrier()


def broadcast_object(obj, context: DistributedContext):
    if not context.active:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish() -> None:
    """Leave the process group together: a rank that tears gloo down while another still
    talks to it can abort ('terminate called without an active exception')."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
