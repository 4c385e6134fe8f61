"""How many torch threads a training process uses on a CPU, chosen on purpose.

Why: torch starts one OpenMP thread per core. A small network (tiny64: 8 to 64 channels;
demo-phantom-64: up to 128) gives each operation too little work to split, and the threads
wait for each other at every one of its hundreds of small operations per step; when the
cores are shared (a loaded machine, a virtual machine) one descheduled thread stalls all of
them. Measured with ``tests/benchmarks/bench_train.py --thread-sweep`` (1, 2 and torch's
default threads, each a fresh process, asked in turn for every figure) on a 2-core machine
shared with other work, 2026-12-03 (docs/benchmarks.md): one thread ran tiny64 and
demo-phantom-64 at 0.52-9.5x the default's images/s as the machine was, and at
0.99-18x with two busy processes competing, where the default fell to 2-19 images/s (the
tester's 3.5-6); at a quiet moment the default's best was 1.2-1.9x one thread. One thread
loses at most half when the machine is quiet and avoids collapses of up to 18x when it is
not. quick256's first resolutions (256 channels, 4-32 px) gained from threads (one thread
0.61-0.94x of the default, no collapse seen as the machine was), so wider networks keep
torch's default. Two processes under torchrun with one thread each (gloo) were 1.5-1.9x one
thread from 16 px up (``tests/benchmarks/bench_cpu_threads.py``): torchrun is the
documented way to use both cores.

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

SMALL_NETWORK_CHANNELS = 128  # widest layer measured to run best on one thread (see above)


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
