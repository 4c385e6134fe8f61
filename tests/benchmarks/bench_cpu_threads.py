"""Training speed of the CPU preset (tiny64) per torch thread count, and under torchrun.

Prints JSON: images/s of one training step (D with gradient penalty, G, EMA) at every
resolution of the preset, with its own batch sizes, for

- ``threads_1``: one process, ``torch.set_num_threads(1)`` (the baseline),
- ``threads_2``: one process, two threads,
- ``torchrun_2x1``: two processes under torchrun (gloo, DDP), one thread each,

each also while ``--busy`` other processes spin on the CPUs (a loaded machine: the tester
saw 3.5-6 images/s with the default threads there, 100-900 with OMP_NUM_THREADS=1), and the
ratio of every figure to the 1-thread baseline measured in the same run under the same load.
Every configuration runs in a fresh process with OMP_NUM_THREADS set before torch starts.

    python tests/benchmarks/bench_cpu_threads.py [--seconds 2] [--busy 2] [--no-torchrun]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _spin(stop: multiprocessing.Event) -> None:  # a competing busy process
    while not stop.is_set():
        sum(range(10_000))


def worker(seconds: float) -> None:
    """Time the preset's step at each resolution in this process (or this torchrun rank);
    rank 0 prints one JSON line."""
    sys.path.insert(0, str(ROOT))
    import torch

    from cxrgan_desktop.engine.pggan import Discriminator, Generator
    from cxrgan_desktop.engine.training import distributed
    from cxrgan_desktop.engine.training.config import load_config
    from cxrgan_desktop.engine.training.loop import _step
    from cxrgan_desktop.engine.training.state import TrainingState

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    context = distributed.DistributedContext()
    if distributed.launched_by_torchrun():
        context, _ = distributed.initialise("cpu")
    config = load_config("tiny64")
    out = {}
    for depth, resolution in enumerate(config.resolutions):
        batch = config.batch_sizes[resolution]
        G = Generator(config.architecture, depth=depth)
        D = Discriminator(config.architecture, depth=depth)
        state = TrainingState.create(config, torch.device("cpu"), G=G, D=D, rank=context.rank)
        G_run, D_run = distributed.wrap(state.G, context), distributed.wrap(state.D, context)
        real = torch.rand(batch // context.world, 1, resolution, resolution)

        def step(state=state, G_run=G_run, D_run=D_run, real=real, batch=batch) -> None:
            _step(state, G_run, D_run, real, False, False, batch=batch)

        step()  # warm-up
        steps, start = 0, time.perf_counter()
        while True:  # every rank takes the same number of steps (DDP needs it)
            step()
            steps += 1
            spent = distributed.broadcast_object(time.perf_counter() - start, context)
            if spent >= seconds:
                break
        out[str(resolution)] = round(batch * steps / spent, 1)
    if context.is_main:
        print(json.dumps(out), flush=True)
    distributed.finish()


def measure(threads: int, processes: int, seconds: float) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    script = [str(Path(__file__).resolve()), "--worker", "--seconds", str(seconds)]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", *script]
    else:
        command = [sys.executable, *script]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(seconds: float, torchrun: bool) -> dict[str, dict]:
    rows = {"threads_1": measure(1, 1, seconds), "threads_2": measure(2, 1, seconds)}
    if torchrun:
        rows["torchrun_2x1"] = measure(1, 2, seconds)
    base = rows["threads_1"]
    ratios = {name: {r: round(v / base[r], 2) for r, v in row.items()}
              for name, row in rows.items() if name != "threads_1"}
    return {"images_per_s": rows, "ratio_to_threads_1": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per resolution")
    parser.add_argument("--busy", type=int, default=2,
                        help="busy processes for the loaded measurement (0: skip it)")
    parser.add_argument("--no-torchrun", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.seconds)
        return
    report = {"benchmark": "tiny64 training step per resolution (images/s)",
              "cpus": os.cpu_count(), "machine": platform.machine(),
              "load_average_before": os.getloadavg(),
              "idle": table(args.seconds, not args.no_torchrun)}
    if args.busy:
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=_spin, args=(stop,))
                    for _ in range(args.busy)]
        for process in spinners:
            process.start()
        try:
            report[f"busy_{args.busy}"] = table(args.seconds, not args.no_torchrun)
        finally:
            stop.set()
            for process in spinners:
                process.join()
    import torch

    report["torch"] = torch.__version__
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
