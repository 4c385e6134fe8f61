"""The data order: a seeded permutation per epoch, resumable at any sample.

Epoch e visits the images in ``randperm(N)`` drawn from seed (config seed, e); a position
within the epoch is all it takes to continue after a restart. Under torch.distributed each
rank takes every world-th sample of the same order, so ranks never see the same image in
one step.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=2)  # asked every step: draw each order once (callers only read)
def epoch_order(seed: int, epoch: int, count: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(count, generator=generator)


def next_indices(seed: int, count: int, epoch: int, position: int, batch: int,
                 rank: int = 0, world: int = 1) -> tuple[list[int], int, int]:
    """Indices of this rank's next ``batch`` samples and the new (epoch, position).

    ``position`` counts global samples (all ranks together) used in ``epoch``.
    """
    indices: list[int] = []
    order = epoch_order(seed, epoch, count)
    need = batch * world
    taken = 0
    while taken < need:
        if position >= count:
            epoch, position = epoch + 1, 0
            order = epoch_order(seed, epoch, count)
        if (taken % world) == rank:
            indices.append(int(order[position]))
        position += 1
        taken += 1
    return indices, epoch, position
