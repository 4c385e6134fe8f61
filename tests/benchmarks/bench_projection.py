"""Projection of held-out phantoms: reconstruction PSNR and SSIM, and projection steps/s.

Writes ``--n`` (20) phantoms with seed 1234 at the model's resolution (the bundled
``demo-phantom-64`` was trained on seed 0, so these are patients it never saw), projects each
with ``--restarts`` x ``--steps`` (the defaults of ``cxrgan project``: 4 x 300, learning rate
0.1) and prints a table: per image the SSIM of the best random start (the images
``cxrgan generate --seed 0`` draws, before any optimisation) and the final PSNR and SSIM, then
mean, min and max. SSIM is single-scale (Wang 2004, 11-px Gaussian window), PSNR with
peak 1, both on the 16-bit values written to original.png and reconstruction.png.

Speed: a projection step is one forward and backward pass through the generator and the
loss for all starts together (one batch), plus the Adam update; steps/s is ``steps`` over
the wall time of ``project`` (the final render, metrics and typicality included; after one
untimed warm-up projection), and start-steps/s multiplies by the starts. Torch runs on
``--threads`` (1) CPU threads.

Measured (demo-phantom-64, 20 phantoms, 4 x 300, lr 0.1, torch 2.13 CPU, 1 thread, on a
2-core machine shared with other jobs): PSNR 22.48 dB mean (20.85 min, 24.03 max), SSIM
0.7826 mean (0.7143 min, 0.8170 max), best random start SSIM 0.6028 mean; 40.1 steps/s mean
(28.1 min, 44.9 max), i.e. 160 start-steps/s, about 7.5 s per projection.

    python tests/benchmarks/bench_projection.py [--model demo-phantom-64] [--n 20]
        [--restarts 4] [--steps 300] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cxrgan_desktop.core import runtime  # noqa: E402

runtime.configure_before_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from cxrgan_desktop.engine.checkpoints import load_generator  # noqa: E402
from cxrgan_desktop.engine.projection import (  # noqa: E402
    DEFAULT_LEARNING_RATE,
    DEFAULT_RESTARTS,
    DEFAULT_STEPS,
    image_ssim,
    prepare_target,
    project,
    to_16bit,
)
from cxrgan_desktop.engine.render import Renderer, latents_for_seed  # noqa: E402
from cxrgan_desktop.imaging.readers import read_image  # noqa: E402
from cxrgan_desktop.store import zoo  # noqa: E402
from cxrgan_desktop.tasks.phantom import write_phantoms  # noqa: E402

HELD_OUT_SEED = 1234


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-phantom-64")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--restarts", type=int, default=DEFAULT_RESTARTS)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--lr", type=float, default=DEFAULT_LEARNING_RATE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_generator(zoo.resolve_model(args.model))
    resolution = model.resolution
    renderer = Renderer(model)
    starts = renderer.render(latents_for_seed(0, args.restarts, model.config.latent_size))
    start_images = [to_16bit(image[0].numpy()) for image in starts]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        folder = write_phantoms(Path(work) / "held_out", n=args.n, size=resolution,
                                seed=HELD_OUT_SEED, images_per_patient=1)
        files = sorted(folder.glob("*.png"))
        project(model, read_image(files[0]).pixels, restarts=args.restarts, steps=5,
                lr=args.lr)  # warm-up, not timed: the first passes allocate
        for file in files:
            pixels = read_image(file).pixels
            target = prepare_target(pixels, resolution)
            start_ssim = max(image_ssim(s, target) for s in start_images)
            began = time.perf_counter()
            result = project(model, pixels, restarts=args.restarts, steps=args.steps,
                             lr=args.lr, seed=0)
            seconds = time.perf_counter() - began
            rows.append({"file": file.name, "start_ssim": start_ssim, "psnr": result.psnr,
                         "ssim": result.ssim, "seconds": seconds,
                         "typical": result.typicality.prior_fraction_as_far})
            print(f"{file.name}  best start SSIM {start_ssim:.4f}  ->  PSNR {result.psnr:6.2f} "
                  f"dB  SSIM {result.ssim:.4f}  ({seconds:.1f} s)", flush=True)
    psnr = np.array([r["psnr"] for r in rows])
    ssim = np.array([r["ssim"] for r in rows])
    start = np.array([r["start_ssim"] for r in rows])
    seconds = np.array([r["seconds"] for r in rows])
    steps_per_s = args.steps / seconds
    print()
    print(f"model {model.name} ({resolution} px, d = {model.config.latent_size}); {len(rows)} "
          f"held-out phantoms (seed {HELD_OUT_SEED}); {args.restarts} starts x {args.steps} "
          f"steps, lr {args.lr}; torch {torch.__version__}, {args.threads} thread(s), "
          f"{platform.processor() or platform.machine()}")
    print(f"{'':22}{'mean':>9}{'min':>9}{'max':>9}")
    for name, values, fmt in (("PSNR (dB)", psnr, "{:9.2f}"), ("SSIM", ssim, "{:9.4f}"),
                              ("best start SSIM", start, "{:9.4f}"),
                              ("steps/s", steps_per_s, "{:9.1f}"),
                              ("start-steps/s", steps_per_s * args.restarts, "{:9.1f}")):
        print(f"{name:22}" + "".join(fmt.format(v) for v in
                                     (values.mean(), values.min(), values.max())))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "settings": vars(args) | {
            "json": str(args.json)}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
