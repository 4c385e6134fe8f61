"""How many torch threads a training process uses on a CPU, chosen on purpose.

Why: torch starts one OpenMP thread per core. A tiny network (the tiny64 preset: 8 to 64
channels) gives each operation too little work to split, and the threads wait for each
other at every one of its hundreds of small operations per step; when the cores are shared
(a loaded machine, a virtual machine) one descheduled thread stalls all of them. Measured
with tests/benchmarks/bench_cpu_threads.py on a 2-core machine shared with other work:
2 threads ran tiny64 at 0.1x to 2x the speed of one thread, varying from run to run, while
one thread was steady; the tester's loaded machine went from 3.5-6 to 100-900 images/s with
OMP_NUM_THREADS=1. Two processes under torchrun with one thread each (gloo) were 1.1-1.7x
one process from 16 px up, and slower at 4 px.

So: an explicit ``cpu_threads`` wins; else a user's OMP_NUM_THREADS (torchrun sets it to 1
per process); else one thread for networks no wider than :data:`SMALL_NETWORK_CHANNELS`;
else torch's default shared among the processes of this machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from cxrgan_desktop.engine.training.config import TrainConfig

SMALL_NETWORK_CHANNELS = 128  # widest layer of a network that runs best on one thread


def choose_threads(config: TrainConfig, local_processes: int = 1) -> tuple[int, str]:
    """(threads, why) for one training process on a CPU."""
    if config.cpu_threads:
        return config.cpu_threads, "cpu_threads in the config"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    if max(config.channels) <= SMALL_NETWORK_CHANNELS:
        return 1, f"small network (at most {SMALL_NETWORK_CHANNELS} channels): one thread"
    cores = os.cpu_count() or 1
    return max(1, cores // max(local_processes, 1)), "cores shared among the processes"


@contextmanager
def cpu_threads(config: TrainConfig, device: torch.device,
                local_processes: int = 1) -> Iterator[tuple[int, str]]:
    """Use the chosen thread count on a CPU while the block runs, then restore the previous
    one (the Train tab runs training in its own process, but tests and scripts do not).
    On a GPU the count is left alone and reported as it is."""
    before = torch.get_num_threads()
    if device.type != "cpu":
        yield before, "not a CPU run: unchanged"
        return
    threads, why = choose_threads(config, local_processes)
    torch.set_num_threads(threads)
    try:
        yield threads, why
    finally:
        torch.set_num_threads(before)
