"""Training speed per resolution with the paper's architecture (short runs, random data).

Prints JSON: images/s of one training step (D step with gradient penalty and drift, G step,
EMA update) of the project's trainer, and of a straightforward reference step written the
way the authors' code does it (D on real, D on fake, penalty by autograd.grad with
grad_outputs, EMA by copying beta * target + (1 - beta) * source parameter by parameter),
timed in the same run on the same networks and data, and their ratio.

    python tests/benchmarks/bench_train.py [--max-resolution 32] [--steps 3] [--batch 8]

CPU figures here; on a GPU session pass --device cuda for the same table there.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per resolution")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
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
