"""FID speed: feature extraction at 1024 px, the Fréchet distance at 2048-d, and KID.

Prints a table. Every ratio is against a straightforward baseline timed in the same run:

1. Feature extraction, images/s from 1024x1024 grey images in [0, 1], the resize to 299 px
   included:
   - ``ours``: ``FeatureExtractor`` with the ``antialias`` preprocessing (one batched torch
     antialiased bicubic resize, batch norm folded into the convolutions, channels-last);
   - ``baseline``: a PIL bicubic resize per image on the CPU (mode "F", float32), stack,
     replicate to 3 channels, 2x - 1, and the plain network (batch norm unfolded, contiguous
     memory format), under ``torch.no_grad``.
   Both in full float32 (TF32 off on CUDA). Also the resize alone (batched torch against PIL
   per image), and how far the two routes' features differ (max abs difference over max abs
   feature), with the resized images' difference and the network's share (folded +
   channels-last against plain, on the same input) beside it. PIL's bicubic and torch's
   antialiased bicubic need not agree exactly; the run shows how close they come.
   The published weights are not available offline: the network carries deterministic random
   weights (``tests.reference.fid_random_weights``). Speed does not depend on weight values.
2. The Fréchet distance between 2048-d statistics of two sets of realistic (non-negative,
   correlated) synthetic features: ours (two symmetric eigendecompositions) against
   ``scipy.linalg.sqrtm(S1 @ S2)`` (real part), with both FID values; and, for two sets of
   1000 features, ``frechet_distance_from_features`` against statistics + the eigen route.
3. KID for two sets of 4096 features, default subsets (time only).

Runs on the CPU unless told otherwise. scipy's sqrtm is the slowest step (tens of seconds on
two cores, up to about a minute; ``--skip-sqrtm`` leaves it out). Timings on a shared machine
move with its load: compare ratios within one run.

    python tests/benchmarks/bench_fid.py [--device cpu|cuda|auto] [--images 32] \\
        [--batch-size 16] [--warmup 1] [--repeats 3] [--skip-sqrtm]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cxrgan_desktop.core import runtime  # noqa: E402

runtime.configure_before_torch()

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from cxrgan_desktop.engine.devices import describe_device, resolve_device  # noqa: E402
from cxrgan_desktop.metrics.fid_features import (  # noqa: E402
    FeatureExtractor,
    full_float32,
    network_input,
    resize_batch,
)
from cxrgan_desktop.metrics.fid_settings import Preprocessing  # noqa: E402
from cxrgan_desktop.metrics.frechet import (  # noqa: E402
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
)
from cxrgan_desktop.metrics.inception import FEATURE_DIM, build_fid_inception  # noqa: E402
from cxrgan_desktop.metrics.kid import kernel_inception_distance  # noqa: E402
from tests.reference.fid_random_weights import random_state  # noqa: E402

SIZE = 1024
INPUT = 299
ANTIALIAS = Preprocessing("antialias")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median(values: list[float]) -> float:
    return float(np.median(values))


def test_images(count: int, seed: int = 0) -> torch.Tensor:
    """[count, 1, 1024, 1024] float32 in [0, 1]: smooth structure plus fine noise, so that
    the resize has edges and texture to filter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / (SIZE - 1)
    out = np.empty((count, 1, SIZE, SIZE), dtype=np.float32)
    for k in range(count):
        fx, fy = rng.uniform(2, 12, 2)
        smooth = 0.5 + 0.3 * np.sin(fx * x + k) * np.cos(fy * y)
        noise = rng.standard_normal((SIZE, SIZE), dtype=np.float32) * 0.05
        out[k, 0] = np.clip(smooth + noise, 0.0, 1.0)
    return torch.from_numpy(out)


def fresh_network() -> torch.nn.Module:
    """A new network per route: FeatureExtractor folds batch norm in place."""
    return build_fid_inception(random_state(0))


def pil_resize(images: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] on the CPU -> [N, 1, 299, 299]: PIL bicubic, one image at a time."""
    resized = [np.asarray(Image.fromarray(image[0].numpy(), mode="F")
                          .resize((INPUT, INPUT), Image.BICUBIC))
               for image in images]
    return torch.from_numpy(np.stack(resized)[:, None])


class Baseline:
    """The straightforward route: PIL per image, plain network, contiguous memory."""

    def __init__(self, net: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.net = net.to(device)

    def network(self, x: torch.Tensor) -> np.ndarray:
        with torch.no_grad(), full_float32(self.device):
            return self.net(x.to(self.device)).cpu().numpy()

    def batch_features(self, images: torch.Tensor) -> np.ndarray:
        resized = pil_resize(images).to(self.device)
        return self.network(resized.repeat(1, 3, 1, 1) * 2.0 - 1.0)


def _throughput(fn, batches: list[torch.Tensor], warmup: int, device: torch.device) -> float:
    for batch in batches[:warmup]:
        fn(batch)
    _sync(device)
    count = sum(len(b) for b in batches)
    start = time.perf_counter()
    for batch in batches:
        fn(batch)
    _sync(device)
    return count / (time.perf_counter() - start)


def features_part(args, device: torch.device) -> list[tuple]:
    images = test_images(args.images)
    batches = list(torch.split(images, args.batch_size))
    ours = FeatureExtractor(fresh_network(), device, ANTIALIAS)
    base = Baseline(fresh_network(), device)

    def ours_resize(batch):
        return resize_batch(batch.to(device), ANTIALIAS)

    resize_ours = _throughput(ours_resize, batches, args.warmup, device)
    resize_pil = _throughput(pil_resize, batches, args.warmup, torch.device("cpu"))
    base_rate = _throughput(base.batch_features, batches, args.warmup, device)
    ours_rate = _throughput(ours.batch_features, batches, args.warmup, device)

    first = batches[0]
    f_ours, f_base = ours.batch_features(first), base.batch_features(first)
    same_input = network_input(first.to(device), ANTIALIAS)
    f_plain_net = base.network(same_input)
    resize_diff = float((resize_batch(first, ANTIALIAS) - pil_resize(first)).abs().max())
    scale = float(np.abs(f_base).max())
    total_diff = float(np.abs(f_ours - f_base).max()) / scale
    net_diff = float(np.abs(f_ours - f_plain_net).max()) / float(np.abs(f_plain_net).max())
    return [
        ("resize 1024 -> 299: PIL per image (baseline)", f"{resize_pil:.2f}", "images/s", "1.00"),
        ("resize 1024 -> 299: torch batched antialias (ours)", f"{resize_ours:.2f}", "images/s",
         f"{resize_ours / resize_pil:.2f}"),
        ("features incl. resize: PIL + plain net (baseline)", f"{base_rate:.2f}", "images/s",
         "1.00"),
        ("features incl. resize: FeatureExtractor (ours)", f"{ours_rate:.2f}", "images/s",
         f"{ours_rate / base_rate:.2f}"),
        ("resized image difference torch vs PIL (max abs)", f"{resize_diff:.2e}", "[0, 1]", ""),
        ("feature difference ours vs baseline (max abs / max)", f"{total_diff:.2e}", "", ""),
        ("  of which network only (same input, folded vs plain)", f"{net_diff:.2e}", "", ""),
    ]


def synthetic_features(count: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """[count, 2048] non-negative, correlated, sparse-ish, like Inception pool features: a
    low-rank shared factor plus independent noise, through a ReLU. ``shift`` moves the
    second set's factor loadings and offsets, as a generator's features differ from real."""
    rng = np.random.default_rng(1234)  # shared structure
    rank = 256
    mixing = rng.standard_normal((rank, FEATURE_DIM)) / np.sqrt(rank)
    offset = rng.uniform(-0.3, 0.3, FEATURE_DIM)
    perturb = rng.standard_normal((rank, FEATURE_DIM)) / np.sqrt(rank)
    own = np.random.default_rng(seed)
    latent = own.standard_normal((count, rank))
    pre = latent @ (mixing + shift * perturb) + offset + shift * 0.2
    pre += 0.5 * own.standard_normal((count, FEATURE_DIM))
    return np.maximum(pre, 0.0).astype(np.float32)


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return _median(times), value


def sqrtm_fid(mu1, s1, mu2, s2) -> float:
    """The usual route (as pytorch-fid writes it, without its singular-matrix fallback)."""
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def frechet_part(args) -> list[tuple]:
    f1 = synthetic_features(args.features, seed=1)
    f2 = synthetic_features(args.features, seed=2, shift=0.3)
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    rows = []
    eigen_s, eigen_fid = _timed(lambda: frechet_distance(mu1, s1, mu2, s2), args.repeats)
    if args.skip_sqrtm:
        rows.append((f"Frechet 2048-d, N={args.features}: scipy sqrtm (baseline)", "skipped",
                     "s", ""))
        rows.append(("Frechet 2048-d: eigen route (ours)", f"{eigen_s:.3f}", "s", ""))
        rows.append(("  FID ours", f"{eigen_fid:.6f}", "", ""))
    else:
        sqrtm_s, sqrtm_value = _timed(lambda: sqrtm_fid(mu1, s1, mu2, s2), 1)
        rows.append((f"Frechet 2048-d, N={args.features}: scipy sqrtm (baseline)",
                     f"{sqrtm_s:.3f}", "s", "1.00"))
        rows.append(("Frechet 2048-d: eigen route (ours)", f"{eigen_s:.3f}", "s",
                     f"{sqrtm_s / eigen_s:.2f}"))
        rows.append(("  FID sqrtm / FID ours", f"{sqrtm_value:.6f} / {eigen_fid:.6f}", "", ""))
        rows.append(("  relative difference", f"{abs(sqrtm_value - eigen_fid) / eigen_fid:.2e}",
                     "", ""))

    small1, small2 = f1[:args.small], f2[:args.small]

    def stats_route():
        return frechet_distance(*feature_statistics(small1), *feature_statistics(small2))

    stats_s, stats_fid = _timed(stats_route, args.repeats)
    direct_s, direct_fid = _timed(lambda: frechet_distance_from_features(small1, small2),
                                  args.repeats)
    rows.append((f"Frechet N={args.small}: statistics + eigen route (baseline)",
                 f"{stats_s:.3f}", "s", "1.00"))
    rows.append((f"Frechet N={args.small}: from features, SVD (ours)", f"{direct_s:.3f}", "s",
                 f"{stats_s / direct_s:.2f}"))
    rows.append(("  FID eigen / FID from features", f"{stats_fid:.6f} / {direct_fid:.6f}",
                 "", ""))
    rows.append(("  relative difference", f"{abs(stats_fid - direct_fid) / stats_fid:.2e}",
                 "", ""))

    start = time.perf_counter()
    kid = kernel_inception_distance(f1, f2)
    kid_s = time.perf_counter() - start
    rows.append((f"KID N={args.features}, {kid.subsets} subsets of {kid.subset_size}",
                 f"{kid_s:.3f}", "s", ""))
    return rows


def print_table(title: str, rows: list[tuple]) -> None:
    header = ("", "value", "unit", "vs baseline")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(4)]
    print(f"\n{title}")
    for row in [header, *rows]:
        print(f"  {row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  "
              f"{row[3]:>{widths[3]}}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--images", type=int, default=32, help="images timed per route")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1, help="warm-up batches per route")
    parser.add_argument("--features", type=int, default=4096,
                        help="feature rows per set for the 2048-d statistics and KID")
    parser.add_argument("--small", type=int, default=1000,
                        help="feature rows per set for the from-features row")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs (median) of the eigen and from-features routes")
    parser.add_argument("--skip-sqrtm", action="store_true", help="leave out scipy's sqrtm")
    parser.add_argument("--skip-features", action="store_true",
                        help="leave out the feature extraction part")
    args = parser.parse_args()
    device = resolve_device(args.device)

    print("FID benchmark")
    print(f"  machine: {platform.processor() or platform.machine()}, python "
          f"{platform.python_version()}")
    print(f"  torch {torch.__version__}, {torch.get_num_threads()} threads; numpy "
          f"{np.__version__}; scipy {scipy.__version__}")
    print(f"  device: {describe_device(device)}")
    print("  network: FID Inception layout with deterministic random weights "
          "(tests.reference.fid_random_weights, seed 0); the published weights are not "
          "available offline, and speed does not depend on weight values")
    if not args.skip_features:
        print_table(f"1. Features from {SIZE}x{SIZE} grey images ({args.images} images, "
                    f"batch {args.batch_size}, {args.warmup} warm-up batch(es))",
                    features_part(args, device))
    print_table("2-3. Frechet distance and KID (float64, numpy/scipy, CPU)", frechet_part(args))


if __name__ == "__main__":
    main()
