"""Training speed per resolution with the paper's architecture (short runs, random data).

Prints JSON: images/s of one training step (D step with gradient penalty and drift, G step,
EMA update) of the project's trainer, and of a straightforward reference step written the
way the authors' code does it (D on real, D on fake, penalty by autograd.grad with
grad_outputs, EMA by copying beta * target + (1 - beta) * source parameter by parameter),
timed in the same run on the same networks and data, and their ratio.

    python tests/benchmarks/bench_train.py [--max-resolution 16] [--steps 3] [--batch 8]

CPU figures here; on a GPU session pass --device cuda for the same table there.

``--thread-sweep`` measures instead how many torch threads a small network should train
with on a CPU (what :mod:`cxrgan_desktop.engine.training.threads` chooses): images/s of the
same training step at every resolution of the tiny presets (``--presets``, default tiny64
and demo-phantom-64, each with its own batch sizes and channel widths), with 1 thread,
2 threads and torch's default (one per core), each in a fresh process that calls
``torch.set_num_threads`` before any work (the default: no call, OMP_NUM_THREADS unset), with
the allocator setting ``cxrgan`` makes. Every figure is the batch over the median step time
(at least ``--sweep-steps`` steps and ``--sweep-seconds`` per resolution after one warm-up;
a step so slow that twice that time has passed ends it), with its ratio to the default
measured in the same run: as the machine is (the load averages before and after are
reported), and with ``--busy N`` again while N processes spin on the CPUs (a loaded machine,
where a tester saw 3.5-6 images/s with the default threads and 100-900 with
OMP_NUM_THREADS=1).

    python tests/benchmarks/bench_train.py --thread-sweep [--presets tiny64,demo-phantom-64]
        [--busy 0] [--sweep-seconds 1] [--sweep-steps 3] [--sweep-max-resolution 0]
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import torch
from torch import autograd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cxrgan_desktop.engine.pggan import PAPER_CHANNELS, Discriminator, Generator, PGGANConfig  # noqa: E402
from cxrgan_desktop.engine.training.config import TrainConfig  # noqa: E402
from cxrgan_desktop.engine.training.loop import _step  # noqa: E402
from cxrgan_desktop.engine.training.state import TrainingState  # noqa: E402


def reference_step(G, D, G_ema, opt_G, opt_D, real, latent, gp_lambda=10.0, drift=0.001,
                   beta=0.999):
    """As the authors' training step computes it (no fusion, allocating updates)."""
    z = torch.randn(real.shape[0], latent, device=real.device)
    fake = G(z).detach()
    d_real, d_fake = D(real), D(fake)
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device).expand_as(real)
    interpolates = (alpha * real.detach() + (1 - alpha) * fake).requires_grad_(True)
    d_inter = D(interpolates)
    gradients = autograd.grad(outputs=d_inter, inputs=interpolates,
                              grad_outputs=torch.ones_like(d_inter), create_graph=True,
                              retain_graph=True, only_inputs=True)[0]
    penalty = ((gradients.view(real.shape[0], -1).norm(2, dim=1) - 1) ** 2).mean()
    loss_d = d_fake.mean() - d_real.mean() + gp_lambda * penalty + drift * (d_real ** 2).mean()
    opt_D.zero_grad()
    loss_d.backward()
    opt_D.step()
    loss_g = -D(G(torch.randn(real.shape[0], latent, device=real.device))).mean()
    opt_G.zero_grad()
    loss_g.backward()
    opt_G.step()
    with torch.no_grad():
        source = dict(G.named_parameters())
        for name, target in G_ema.named_parameters():
            target.copy_(beta * target + (1 - beta) * source[name])


def timed(fn, steps: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def measure(depth: int, arch: PGGANConfig, config: TrainConfig, batch: int, steps: int,
            device: torch.device) -> dict[str, float]:
    """Both steps at one resolution, on copies of the same networks and the same batch."""
    resolution = 4 * 2**depth
    torch.manual_seed(0)
    G, D = Generator(arch, depth=depth).to(device), Discriminator(arch, depth=depth).to(device)
    G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
    state = TrainingState.create(config, device, G=G, D=D)
    real = torch.rand(batch, 1, resolution, resolution, device=device)
    ours = timed(lambda: _step(state, state.G, state.D, real, False, False), steps)
    ema2 = copy.deepcopy(G2).requires_grad_(False)
    opt_g = torch.optim.Adam(G2.parameters(), lr=1e-3, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D2.parameters(), lr=1e-3, betas=(0.0, 0.99))
    reference = timed(lambda: reference_step(G2, D2, ema2, opt_g, opt_d, real,
                                             arch.latent_size), steps)
    return {"images_per_s": round(batch / ours, 2),
            "reference_images_per_s": round(batch / reference, 2),
            "speedup_vs_reference": round(reference / ours, 3)}


THREADS_SWEPT = ("1", "2", "default")


def sweep_worker(threads: str) -> None:
    """A fresh process with ``threads`` torch threads, set before any work so that it takes
    effect cleanly; it reads "preset resolution seconds steps" lines and answers each with one
    JSON line: images/s of that preset's step at that resolution."""
    if threads != "default":
        torch.set_num_threads(int(threads))
    from cxrgan_desktop.engine.training.config import load_config

    print(json.dumps({"torch_threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        name, resolution_text, seconds_text, steps_text = line.split()
        config = load_config(name)
        resolution, seconds, min_steps = int(resolution_text), float(seconds_text), int(steps_text)
        depth, batch = config.resolutions.index(resolution), config.batch_sizes[resolution]
        torch.manual_seed(0)
        G = Generator(config.architecture, depth=depth)
        D = Discriminator(config.architecture, depth=depth)
        state = TrainingState.create(config, torch.device("cpu"), G=G, D=D)
        real = torch.rand(batch, 1, resolution, resolution)
        _step(state, state.G, state.D, real, False, False)  # warm-up
        times: list[float] = []
        begun = time.perf_counter()
        while True:  # >= min_steps and >= seconds; past 2 x seconds, stop after one step
            start = time.perf_counter()
            _step(state, state.G, state.D, real, False, False)
            times.append(time.perf_counter() - start)
            spent = time.perf_counter() - begun
            if spent >= 2 * seconds or (spent >= seconds and len(times) >= min_steps):
                break
        print(json.dumps({"images_per_s": round(batch / statistics.median(times), 1),
                          "steps": len(times)}), flush=True)


def _spin(stop) -> None:  # a competing busy process
    while not stop.is_set():
        sum(range(10_000))


class SweepWorkers:
    """One fresh process per thread count, asked in turn for each figure (only one works at
    a time), so that a change of load on a shared machine falls on all of them alike."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as cxrgan sets it before torch starts
        self.processes = {
            threads: subprocess.Popen([sys.executable, __file__, "--sweep-worker", threads],
                                      env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, bufsize=1)
            for threads in THREADS_SWEPT}
        self.torch_threads = {threads: self._answer(threads)["torch_threads"]
                              for threads in THREADS_SWEPT}

    def _answer(self, threads: str) -> dict:
        line = self.processes[threads].stdout.readline()
        if not line:
            raise RuntimeError(f"thread sweep worker ({threads}) ended; see its stderr above")
        return json.loads(line)

    def measure(self, threads: str, preset: str, resolution: int, seconds: float,
                min_steps: int) -> dict:
        self.processes[threads].stdin.write(f"{preset} {resolution} {seconds} {min_steps}\n")
        return self._answer(threads)

    def close(self) -> None:
        for process in self.processes.values():
            process.stdin.close()
            process.wait()


def _sweep_once(presets: list[str], seconds: float, min_steps: int,
                max_resolution: int = 0) -> dict:
    """Every preset and resolution with 1, 2 and default threads, and ratios to the default."""
    from cxrgan_desktop.engine.training.config import load_config
    from cxrgan_desktop.engine.training.threads import choose_threads

    workers = SweepWorkers()
    try:
        out: dict = {"torch_threads": workers.torch_threads}
        for name in presets:
            config = load_config(name)
            table = {}
            for resolution in config.resolutions:
                if max_resolution and resolution > max_resolution:
                    break
                figures = {threads: workers.measure(threads, name, resolution, seconds,
                                                    min_steps)["images_per_s"]
                           for threads in THREADS_SWEPT}
                row = {}
                for threads, figure in figures.items():
                    row[f"threads_{threads}_images_per_s"] = figure
                    if threads != "default":
                        row[f"threads_{threads}_vs_default"] = round(
                            figure / figures["default"], 2)
                table[str(resolution)] = row
            with mock.patch.dict(os.environ):  # the rule as the workers' environment has it
                os.environ.pop("OMP_NUM_THREADS", None)
                rule = choose_threads(config)
            out[name] = {"widest_channels": max(config.channels), "batch_sizes":
                         sorted(set(config.batch_sizes.values())),
                         "rule_chooses": f"{rule[0]} ({rule[1]})", "per_resolution": table}
        return out
    finally:
        workers.close()


def thread_sweep(presets: list[str], seconds: float, min_steps: int, busy: int,
                 max_resolution: int = 0) -> dict:
    report: dict = {
        "benchmark": "training step images/s per torch thread count, CPU, presets "
                     + ", ".join(presets),
        "cpus": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
        "statistic": f"batch / median step time, after one warm-up: >= {min_steps} steps "
                     f"and >= {seconds} s per resolution, or one step past {2 * seconds} s",
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "as_the_machine_is": _sweep_once(presets, seconds, min_steps, max_resolution),
        "load_average_after": [round(v, 2) for v in os.getloadavg()]}
    if busy:
        stop = multiprocessing.Event()
        spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(busy)]
        for process in spinners:
            process.start()
        try:
            report[f"busy_{busy}"] = _sweep_once(presets, seconds, min_steps, max_resolution)
            report[f"load_average_after_busy_{busy}"] = [round(v, 2) for v in os.getloadavg()]
        finally:
            stop.set()
            for process in spinners:
                process.join()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-resolution", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per resolution")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--thread-sweep", action="store_true",
                        help="measure 1, 2 and default torch threads on the tiny presets")
    parser.add_argument("--presets", default="tiny64,demo-phantom-64",
                        help="presets of the thread sweep, comma-separated")
    parser.add_argument("--busy", type=int, default=0,
                        help="busy processes for a second, loaded sweep (default 0: none)")
    parser.add_argument("--sweep-seconds", type=float, default=1.0,
                        help="least seconds of timed steps per resolution in the sweep")
    parser.add_argument("--sweep-steps", type=int, default=3,
                        help="least timed steps per resolution in the sweep")
    parser.add_argument("--sweep-max-resolution", type=int, default=0,
                        help="the sweep's largest resolution (default 0: each preset's own)")
    parser.add_argument("--sweep-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    presets = [p for p in args.presets.split(",") if p]
    if args.sweep_worker:
        sweep_worker(args.sweep_worker)
        return
    if args.thread_sweep:
        print(json.dumps(thread_sweep(presets, args.sweep_seconds, args.sweep_steps,
                                      args.busy, args.sweep_max_resolution), indent=2))
        return
    device = torch.device(args.device)
    arch = PGGANConfig(channels=PAPER_CHANNELS, image_channels=1)
    config = TrainConfig(mixed_precision=False)
    rows = {}
    depth = 0
    while 4 * 2**depth <= args.max_resolution:
        rows[str(4 * 2**depth)] = measure(depth, arch, config, args.batch, args.steps, device)
        depth += 1
    print(json.dumps({
        "benchmark": "one training step (D with GP + drift, G, EMA), paper widths, random data",
        "device": str(device), "batch": args.batch, "steps": args.steps,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.machine(), "per_resolution": rows}, indent=2))


if __name__ == "__main__":
    main()
