"""Generation speed at 1024x1024 with the paper's architecture (random weights).

Prints one JSON object:
- images/s per batch size (``--batches``, default 4) on the fast path, run the way
  `cxrgan generate` runs it;
- achieved GFLOP/s = the network's nominal FLOP count (a plain 3x3 conv after every
  up-sampling, as the paper's network is written) over the time, and the same for the FLOPs
  the fused path actually executes;
- the machine's dense float32 matmul GFLOP/s, measured in the same run (the practical limit);
- the speed-up over a straightforward eager implementation (tests/reference/segal_layout.py,
  as the authors' code computes it) run as a separate process with the same allocator
  setting as the fast path (``THP_MEM_ALLOC_ENABLE=1``, what ``cxrgan`` sets before torch
  starts), so that the ratio is the code's alone;
- the allocator's own row (``allocator``): the fast path and, on a CPU, the naive network
  again with the variable unset (torch's default allocator), and each one's speed-up from
  the setting; the naive network without it is what a plain PyTorch script gets;
- the float16 error against float32.

Each configuration runs in its own fresh process so that allocator settings, which must be
made before torch is imported, apply as they would for a user.

On a GPU (``--device cuda``) the same table is measured there: the matmul limit in the chosen
precision, the fast path and the naive network in that precision, timed to the images on the
host (as ``cxrgan generate`` delivers them); ``--batches`` sets the batch sizes (a GPU needs
large ones, e.g. 64) and ``--precision`` the fast path's arithmetic (float16 for the GPU goal).

    python tests/benchmarks/bench_generate.py [--repeats 3] [--quick] [--device cpu|cuda]
        [--precision float32|float16|bfloat16] [--batches 4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAPER_CHANNELS = (512, 512, 512, 512, 256, 128, 64, 32, 16)


def network_flops(channels=PAPER_CHANNELS, latent=512, image_channels=3, fused=False) -> float:
    """Multiply-adds x 2 of one forward pass at full depth."""
    flops = 2 * latent * 16 * channels[0] + 2 * 9 * channels[0] ** 2 * 16
    size = 4
    for cin, cout in itertools.pairwise(channels):
        low, size = size, size * 2
        # nominal: 3x3 on the up-sampled map; fused: 4x4 transposed conv on the low-res map
        flops += 2 * (16 * low * low if fused else 9 * size * size) * cin * cout
        flops += 2 * 9 * size * size * cout * cout
    return flops + 2 * size * size * channels[-1] * image_channels


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def worker(kind: str, model_path: str, batch: int, repeats: int, device_name: str = "cpu",
           precision: str = "float32") -> dict:
    """Runs inside a fresh process; kind = fast | naive | matmul | half."""
    import torch

    # torch's own names (not the package's table): the naive process imports nothing of ours
    device, dtype = torch.device(device_name), getattr(torch, precision)
    if kind == "matmul":
        a = torch.randn(4096, 4096, device=device, dtype=dtype)
        b = torch.randn(4096, 4096, device=device, dtype=dtype)
        torch.mm(a, b)
        # on a GPU one product takes well under a millisecond: time 10 between synchronisations
        count = 10 if device.type == "cuda" else 1
        best = min(_timed(lambda: [torch.mm(a, b) for _ in range(count)], device)
                   for _ in range(5)) / count
        return {"gflops": 2 * 4096**3 / best / 1e9}
    z = torch.randn(batch, 512, generator=torch.Generator().manual_seed(0))
    if kind == "naive":
        sys.path.insert(0, str(ROOT))
        from tests.reference.segal_layout import ReferenceGenerator

        state = torch.load(model_path, weights_only=True)
        net = ReferenceGenerator(state).to(device, dtype)
        z_device = z.to(device, dtype)

        def run():
            with torch.no_grad():  # .cpu(): to the host, like the fast path (no-op on a CPU)
                return net(z_device).float().clamp(0, 1).mean(dim=1, keepdim=True).cpu()
    else:
        from cxrgan_desktop.engine.checkpoints import load_generator
        from cxrgan_desktop.engine.render import Renderer

        model = load_generator(model_path)
        if kind == "half":
            full = Renderer(model, device).render(z)
            start = time.perf_counter()
            half = Renderer(model, device, precision="float16").render(z)
            seconds = time.perf_counter() - start
            diff = (full - half).abs()
            return {"max_abs_error": diff.max().item(), "mean_abs_error": diff.mean().item(),
                    "seconds": seconds}
        renderer = Renderer(model, device, precision=precision)

        def run():
            return renderer.render(z)

    run()  # warm-up: first-touch page faults, oneDNN primitive creation, CUDA kernels
    times = [_timed(run, device) for _ in range(repeats)]
    return {"seconds_per_batch": _median(times), "all": times}


def _timed(fn, device=None) -> float:
    """Seconds of fn(); on CUDA from a synchronised start to a synchronised end."""
    import torch

    cuda = device is not None and device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _spawn(kind, model_path, batch, repeats, env_changes, device="cpu",
           precision="float32") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE",)}
    env.update(env_changes)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, "--worker", kind, model_path, str(batch),
                          str(repeats), device, precision],
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per configuration")
    parser.add_argument("--quick", action="store_true", help="skip the ablation and fp16 runs")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "float16", "bfloat16"],
                        help="arithmetic of the fast path, the naive network and the matmul "
                             "limit (default float32)")
    parser.add_argument("--batches", default="4",
                        help="batch sizes, comma-separated (default 4; 1,4 for both columns "
                             "of docs/benchmarks.md)")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, path, batch, repeats, device, precision = args.worker
        print(json.dumps(worker(kind, path, int(batch), int(repeats), device, precision)))
        return

    sys.path.insert(0, str(ROOT))
    import torch

    from cxrgan_desktop.engine.devices import describe_device, resolve_device
    from tests.reference.segal_layout import random_segal_generator_state

    device = resolve_device(args.device)
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    on = {"device": str(device), "precision": args.precision}

    with tempfile.TemporaryDirectory() as tmp:
        model_path = str(Path(tmp) / "paper_layout_random.pth")
        torch.save(random_segal_generator_state(seed=0), model_path)
        as_cli = {"THP_MEM_ALLOC_ENABLE": "1"}  # what cxrgan_desktop.core.runtime sets
        matmul = _spawn("matmul", model_path, 1, 1, as_cli, **on)["gflops"]
        nominal, executed = network_flops(), network_flops(fused=True)
        report = {"benchmark": "generate 1024x1024, paper architecture, random weights",
                  "machine": platform.processor() or platform.machine(),
                  "device": describe_device(device), "precision": args.precision,
                  "threads": torch.get_num_threads(), "torch": torch.__version__,
                  f"matmul_{_short(args.precision)}_gflops": round(matmul, 1),
                  "network_gflop_per_image_nominal": round(nominal / 1e9, 2),
                  "network_gflop_per_image_executed_fused": round(executed / 1e9, 2)}
        report["allocator_setting"] = ("THP_MEM_ALLOC_ENABLE=1 for the fast path and the naive "
                                       "network alike" + ("" if args.quick else
                                                          "; unset in each allocator row"))
        for batch in batches:
            fast = _spawn("fast", model_path, batch, args.repeats, as_cli, **on)
            naive = _spawn("naive", model_path, batch, args.repeats, as_cli, **on)
            per_image = fast["seconds_per_batch"] / batch
            naive_per_image = naive["seconds_per_batch"] / batch
            entry = {
                "fast_images_per_s": round(1 / per_image, 3),
                "fast_s_per_image": round(per_image, 3),
                "naive_s_per_image": round(naive_per_image, 3),
                "speedup_vs_naive_process": round(naive_per_image / per_image, 2),
                "achieved_gflops_nominal": round(nominal / per_image / 1e9, 1),
                "achieved_gflops_executed": round(executed / per_image / 1e9, 1),
                "fraction_of_matmul_limit_nominal": round(nominal / per_image / 1e9 / matmul, 3),
                "fraction_of_matmul_limit_executed": round(
                    executed / per_image / 1e9 / matmul, 3),
            }
            if not args.quick:
                plain_fast = _spawn("fast", model_path, batch, args.repeats, {}, **on)
                fast_plain = plain_fast["seconds_per_batch"] / batch
                allocator = {"fast_without_setting_s_per_image": round(fast_plain, 3),
                             "fast_speedup_from_setting": round(fast_plain / per_image, 2)}
                if device.type == "cpu":  # on a GPU the setting touches host copies only
                    plain_naive = _spawn("naive", model_path, batch, args.repeats, {}, **on)
                    naive_plain = plain_naive["seconds_per_batch"] / batch
                    allocator.update({
                        "naive_without_setting_s_per_image": round(naive_plain, 3),
                        "naive_speedup_from_setting": round(naive_plain / naive_per_image, 2),
                        "speedup_vs_naive_without_setting": round(naive_plain / per_image, 2)})
                entry["allocator"] = allocator
            report[f"batch_{batch}"] = entry
        if not args.quick:
            half = _spawn("half", model_path, 1, 1, as_cli, device=str(device))
            arithmetic = "CUDA" if device.type == "cuda" else "CPU"
            report["float16_vs_float32_one_image"] = {
                "max_abs_error": round(half["max_abs_error"], 5),
                "mean_abs_error": round(half["mean_abs_error"], 6),
                "note": f"units of the [0, 1] image; {arithmetic} float16 arithmetic"}
    print(json.dumps(report, indent=2))


def _short(precision: str) -> str:
    """float32 -> fp32, float16 -> fp16, bfloat16 -> bf16 (the report's key as before)."""
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[precision]


if __name__ == "__main__":
    main()
