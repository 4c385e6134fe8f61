"""Latent exploration: shift frames/s against plain generation, and the slider preview.

All timings in one run, the variants taken in turn at every repeat after one warm-up each;
the table gives the median (and min, max) over ``--repeats``.

1. Frames per second for ``--frames`` frames of one start latent:
   - ``generate, one at a time``: ``Renderer.render`` of each latent alone (how frames are
     rendered, so that the lambda-0 frame equals the plain generate exactly);
   - ``generate, batch 4``: the same latents four at a time (``cxrgan generate``'s default);
   - ``shift, single direction``: :func:`shift_path` (one backward pass, then per frame a
     render and a classifier read);
   - ``shift, recomputed gradient``: the same with a backward pass every <= 2 degrees over
     ``--recompute-range`` degrees each side.
2. Slider preview latency: one frame rendered at the previous growth stage (half size,
   :func:`preview_model`: the same pass stopped one block early) against a full-size
   render, on the demo model and, with ``--paper-size``, on the paper's 1024 px architecture
   with random weights (timing only: random weights make no image). The preview's fidelity
   on the demo model: mean |preview - full image box-downsampled to the preview's size|,
   beside the same measure between two different latents' images for scale.

    python tests/benchmarks/bench_latent.py [--model M] [--classifier C] [--frames 9]
        [--repeats 7] [--device cpu] [--paper-size] [--json out.json]

Measured (OMP_NUM_THREADS=1, torch 2.13.0+cpu, 2-core Xeon VM shared with other jobs, load
average about 4.8; ``--paper-size --repeats 9``), frames/s for 9 frames: generate one at a
time 234.1, batch 4 438.6; shift single direction 72.8 (1 backward pass), recomputed
gradient over +-20 degrees 15.7 (24 backward passes). Preview of one frame: demo 64 px full
2.39 ms, 32 px preview 1.81 ms (x1.32); paper architecture 1024 px full 617.95 ms, 512 px
preview 418.33 ms (x1.48). Fidelity: the demo model's previous-stage output is not a
faithful preview: mean |preview - full image downsampled| 0.2307, against 0.0810 between two
different latents' images (its earlier to-image layer stopped training when the next stage
faded in: the structure correlates, r about 0.85, but the contrast does not).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cxrgan_desktop.core import runtime  # noqa: E402

runtime.configure_before_torch()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from cxrgan_desktop.engine.checkpoints import LoadedGenerator, load_generator  # noqa: E402
from cxrgan_desktop.engine.checkpoints.output import PAPER_ADAPTER  # noqa: E402
from cxrgan_desktop.engine.classifier.files import load_classifier  # noqa: E402
from cxrgan_desktop.engine.classifier.installed import resolve_classifier  # noqa: E402
from cxrgan_desktop.engine.latent_shift import preview_model, shift_path  # noqa: E402
from cxrgan_desktop.engine.pggan import PAPER_CHANNELS, Generator, PGGANConfig  # noqa: E402
from cxrgan_desktop.engine.render import Renderer, latents_for_seed  # noqa: E402
from cxrgan_desktop.store import zoo  # noqa: E402


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _interleaved(variants: dict, repeats: int, device: torch.device) -> dict[str, list[float]]:
    for fn in variants.values():  # warm-up: oneDNN primitives, first-touch pages
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(_timed(fn, device))
    return times


def frames_per_second(model: LoadedGenerator, classifier, finding: str, frames: int,
                      recompute_range: float, repeats: int, device: torch.device) -> list[dict]:
    z0 = latents_for_seed(0, 1, model.config.latent_size)[0]
    latents = latents_for_seed(0, frames, model.config.latent_size)
    renderer = Renderer(model, device)
    single = np.linspace(-5.0, 5.0, frames)
    wide = np.linspace(-recompute_range, recompute_range, frames)

    def one_at_a_time():
        for z in latents:
            renderer.render(z[None])

    def batch4():
        for start in range(0, frames, 4):
            renderer.render(latents[start:start + 4])

    variants = {
        "generate, one at a time": one_at_a_time,
        "generate, batch 4": batch4,
        "shift, single direction": lambda: shift_path(model, classifier, finding, z0, single,
                                                      device=device),
        "shift, recomputed gradient": lambda: shift_path(
            model, classifier, finding, z0, wide, recompute_gradient=True, device=device),
    }
    times = _interleaved(variants, repeats, device)
    evaluations = shift_path(model, classifier, finding, z0, wide, recompute_gradient=True,
                             device=device).gradient_evaluations
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append({"variant": name, "frames": frames, "median_s": median,
                     "min_s": min(values), "max_s": max(values),
                     "frames_per_s": frames / median,
                     "gradient_evaluations": {"shift, single direction": 1,
                                              "shift, recomputed gradient": evaluations
                                              }.get(name, 0)})
    return rows


def preview_latency(model: LoadedGenerator, repeats: int, device: torch.device,
                    label: str) -> dict:
    z = latents_for_seed(1, 1, model.config.latent_size)
    full = Renderer(model, device)
    smaller_model = preview_model(model)
    preview = Renderer(smaller_model, device)
    times = _interleaved({"full": lambda: full.render(z), "preview": lambda: preview.render(z)},
                         repeats, device)
    started = time.perf_counter()
    preview_model(model)  # building the preview copy: once per model, not per frame
    build_s = time.perf_counter() - started
    full_s, preview_s = statistics.median(times["full"]), statistics.median(times["preview"])
    return {"model": label, "full_px": model.resolution,
            "preview_px": smaller_model.resolution, "full_ms": 1000 * full_s,
            "preview_ms": 1000 * preview_s, "speedup": full_s / preview_s,
            "preview_model_build_ms": 1000 * build_s,
            "full_min_max_ms": [1000 * min(times["full"]), 1000 * max(times["full"])],
            "preview_min_max_ms": [1000 * min(times["preview"]),
                                   1000 * max(times["preview"])]}


def preview_fidelity(model: LoadedGenerator, count: int = 16) -> dict:
    z = latents_for_seed(2, count, model.config.latent_size)
    full = Renderer(model).render(z)
    preview = Renderer(preview_model(model)).render(z)
    reduced = F.avg_pool2d(full, 2)
    other = reduced.roll(1, dims=0)  # another latent's image, same size
    return {"images": count,
            "mean_abs_preview_vs_full_downsampled": float((preview - reduced).abs().mean()),
            "mean_abs_two_latents_downsampled": float((other - reduced).abs().mean()),
            "mean_abs_preview_vs_other_latent": float((preview - other).abs().mean())}


def paper_model(seed: int = 0) -> LoadedGenerator:
    torch.manual_seed(seed)
    generator = Generator(PGGANConfig(latent_size=512, channels=PAPER_CHANNELS,
                                      image_channels=3)).eval()
    return LoadedGenerator(generator, PAPER_ADAPTER, Path("random"), "0" * 64, "random-1024",
                           "native")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-phantom-64")
    parser.add_argument("--classifier", default="demo-phantom-64-classifier")
    parser.add_argument("--finding", default="Effusion")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--recompute-range", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--paper-size", action="store_true",
                        help="also time the preview at 1024 px (random weights)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    model = load_generator(zoo.resolve_model(args.model))
    classifier = load_classifier(resolve_classifier(args.classifier))
    report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "device": str(device)},
              "model": model.name, "classifier": classifier.name, "finding": args.finding}
    report["frames_per_second"] = frames_per_second(
        model, classifier, args.finding, args.frames, args.recompute_range, args.repeats,
        device)
    report["preview"] = [preview_latency(model, max(args.repeats, 25), device, model.name)]
    if args.paper_size:
        report["preview"].append(preview_latency(paper_model(), args.repeats, device,
                                                 "paper architecture, random weights"))
    report["preview_fidelity"] = preview_fidelity(model)

    print(f"{report['machine']}")
    print(f"\nshift frames/s: {model.name} + {classifier.name}, {args.finding}, "
          f"{args.frames} frames, median of {args.repeats}")
    print(f"{'variant':<28} {'median s':>9} {'min s':>8} {'max s':>8} {'frames/s':>9} "
          f"{'backward':>8}")
    for row in report["frames_per_second"]:
        print(f"{row['variant']:<28} {row['median_s']:>9.4f} {row['min_s']:>8.4f} "
              f"{row['max_s']:>8.4f} {row['frames_per_s']:>9.1f} "
              f"{row['gradient_evaluations']:>8}")
    print("\nslider preview latency (one frame), median")
    print(f"{'model':<36} {'full px':>7} {'full ms':>8} {'prev px':>7} {'prev ms':>8} "
          f"{'speed-up':>8}")
    for row in report["preview"]:
        print(f"{row['model']:<36} {row['full_px']:>7} {row['full_ms']:>8.2f} "
              f"{row['preview_px']:>7} {row['preview_ms']:>8.2f} {row['speedup']:>8.2f}")
    fidelity = report["preview_fidelity"]
    print(f"\npreview fidelity on {model.name} ({fidelity['images']} latents): mean |preview - "
          f"full downsampled| {fidelity['mean_abs_preview_vs_full_downsampled']:.4f}; "
          f"between two latents' downsampled images "
          f"{fidelity['mean_abs_two_latents_downsampled']:.4f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
