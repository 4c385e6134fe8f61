"""FID speed against the tool users run: pytorch-fid's feature route beside ours, scipy's
sqrtm beside our eigen route, and KID.

Prints one JSON object (and a few plain lines before it). Nothing is installed: pytorch-fid
is timed only when it can be imported (``pip install --no-deps pytorch-fid``, with a
torchvision that imports); otherwise its row is skipped and the output says so.

1. Feature extraction, images/s from grey ``--size`` px images in [0, 1] (smooth structure
   plus fine noise), the resize to 299 px included, on the same images, device, thread count
   and weights, in interleaved repeats (medians):
   - ``ours``: ``FeatureExtractor`` with its default ``antialias`` preprocessing (one batched
     antialiased bicubic resize of the single grey channel, batch norm folded, channels-last,
     ``torch.inference_mode``);
   - ``pytorch_fid``: ``pytorch_fid.inception.InceptionV3([3])`` as ``fid_score`` runs it:
     3-channel float images in [0, 1] (what its data set yields for a grey PNG), the model's
     own ``resize_input`` (batched ``F.interpolate``, bilinear, ``align_corners=False``) and
     ``normalize_input``, under ``torch.no_grad``, ``squeeze`` and ``.cpu().numpy()``.
   Decoding files is left out of both. Then the largest feature difference between the
   routes: ours in its ``pytorch-fid`` resize mode should match pytorch-fid to float32
   round-off; ours in ``antialias`` mode differs by design (a different, antialiased
   resize).
   Weights: the published ``pt_inception-2015-12-05-6726825d.pth`` where it is found (our
   cache, or ``--weights``), verified; otherwise deterministic random weights
   (``tests.reference.fid_random_weights``, seed 0). Either way one state dict is loaded into
   both networks (pytorch-fid's own loader, which fetches from its URL, is pointed at it), and
   the output says which. Speed does not depend on weight values.
2. The Fréchet distance between 2048-d statistics of two sets of realistic (non-negative,
   correlated) synthetic features: ``scipy.linalg.sqrtm(S1 @ S2)`` (pytorch-fid's
   calculation, without its singular-matrix fallback) against ours (two symmetric
   eigendecompositions), both timed ``--repeats`` times (medians), with both FID values; and,
   for two sets of ``--small`` features, ``frechet_distance_from_features`` against
   statistics + the eigen route.
3. KID for two sets of ``--features`` features, default subsets (one run, time only).

Runs on the CPU unless told otherwise; the defaults take about two minutes on two shared
cores, most of it in pytorch-fid's route and scipy's sqrtm. Timings on a shared machine move
with its load: compare ratios within one run.

    python tests/benchmarks/bench_fid.py [--device cpu|cuda|auto] [--images 32] \\
        [--size 1024] [--batch-size 16] [--warmup 1] [--repeats 3] [--weights PATH] \\
        [--skip-sqrtm] [--skip-features]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cxrgan_desktop.core import runtime  # noqa: E402

runtime.configure_before_torch()

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402

from cxrgan_desktop.engine.devices import describe_device, resolve_device  # noqa: E402
from cxrgan_desktop.metrics.fid_features import FeatureExtractor, full_float32  # noqa: E402
from cxrgan_desktop.metrics.fid_settings import Preprocessing  # noqa: E402
from cxrgan_desktop.metrics.frechet import (  # noqa: E402
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
)
from cxrgan_desktop.metrics.inception import FEATURE_DIM, build_fid_inception  # noqa: E402
from cxrgan_desktop.metrics.inception_weights import (  # noqa: E402
    cached_path,
    find_weights,
    read_weights_state,
    verify_weights,
)
from cxrgan_desktop.metrics.kid import kernel_inception_distance  # noqa: E402
from tests.reference.fid_random_weights import random_state  # noqa: E402

ANTIALIAS = Preprocessing("antialias")
PYTORCH_FID_MODE = Preprocessing("pytorch-fid")
SKIPPED = "pytorch-fid not importable: its row skipped"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median(values: list[float]) -> float:
    return float(np.median(values))


def test_images(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """[count, 1, size, size] float32 in [0, 1]: smooth structure plus fine noise, so that
    the resize has edges and texture to filter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    out = np.empty((count, 1, size, size), dtype=np.float32)
    for k in range(count):
        fx, fy = rng.uniform(2, 12, 2)
        smooth = 0.5 + 0.3 * np.sin(fx * x + k) * np.cos(fy * y)
        noise = rng.standard_normal((size, size), dtype=np.float32) * 0.05
        out[k, 0] = np.clip(smooth + noise, 0.0, 1.0)
    return torch.from_numpy(out)


def import_pytorch_fid() -> tuple[ModuleType | None, str]:
    """pytorch-fid's inception module, or None and why not (it also needs torchvision, whose
    import fails outright when its compiled ops do not match torch)."""
    try:
        import pytorch_fid
        import pytorch_fid.inception as pf_inception
    except Exception as error:  # any failure means: not importable
        return None, f"{type(error).__name__}: {error}"
    return pf_inception, getattr(pytorch_fid, "__version__", "unknown version")


def weights_state(user_path: str | None) -> tuple[dict[str, torch.Tensor], str]:
    """The published weights where this machine has them, else the random test weights."""
    path = find_weights(user_path)
    if path is not None:
        verify_weights(path)
        return read_weights_state(path), f"published FID Inception weights, {path} (verified)"
    looked = ([user_path] if user_path else []) + [str(cached_path())]
    return random_state(0), (
        "deterministic random weights (tests.reference.fid_random_weights, seed 0) loaded into "
        "both networks: the published pt_inception-2015-12-05-6726825d.pth is not on this "
        f"machine (looked in {', '.join(looked)}); speed does not depend on weight values, "
        "but the FID values are not real FIDs")


def pytorch_fid_network(pf_inception: ModuleType, state: dict[str, torch.Tensor],
                        device: torch.device) -> torch.nn.Module:
    """pytorch-fid's own InceptionV3 (resize_input and normalize_input on, as by default),
    with ``state`` handed to its loader in place of the download from its URL."""
    original = pf_inception.load_state_dict_from_url
    pf_inception.load_state_dict_from_url = lambda *args, **kwargs: dict(state)
    try:
        block = pf_inception.InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]
        model = pf_inception.InceptionV3([block], resize_input=True, normalize_input=True)
    finally:
        pf_inception.load_state_dict_from_url = original
    return model.eval().to(device)


def pytorch_fid_features(model: torch.nn.Module, device: torch.device,
                         batch: torch.Tensor) -> np.ndarray:
    """One batch as ``pytorch_fid.fid_score.get_activations`` computes it."""
    batch = batch.to(device)
    with torch.no_grad(), full_float32(device):
        pred = model(batch)[0]
    return pred.squeeze(3).squeeze(2).cpu().numpy()


Route = tuple[str, Callable[[torch.Tensor], np.ndarray], list[torch.Tensor]]


def interleaved_rates(routes: list[Route], warmup: int, repeats: int,
                      device: torch.device) -> tuple[dict[str, list[float]],
                                                     dict[str, np.ndarray]]:
    """images/s of each route per repeat, the routes alternating in order from repeat to
    repeat so that drift in the machine's load falls on both; and each route's features."""
    for _, fn, batches in routes:
        for batch in batches[:warmup]:
            fn(batch)
    rates: dict[str, list[float]] = {name: [] for name, _, _ in routes}
    features: dict[str, np.ndarray] = {}
    for repeat in range(repeats):
        for name, fn, batches in (routes if repeat % 2 == 0 else routes[::-1]):
            _sync(device)
            start = time.perf_counter()
            out = [fn(batch) for batch in batches]
            _sync(device)
            rates[name].append(sum(len(b) for b in batches) / (time.perf_counter() - start))
            features[name] = np.concatenate(out)
    return rates, features


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def features_part(args, device: torch.device, state: dict[str, torch.Tensor],
                  pf_inception: ModuleType | None, pf_note: str) -> dict:
    grey = test_images(args.images, args.size)
    grey_batches = list(torch.split(grey, args.batch_size))
    ours = FeatureExtractor(build_fid_inception(state), device, ANTIALIAS)
    routes: list[Route] = [("ours", ours.batch_features, grey_batches)]
    if pf_inception is not None:
        model = pytorch_fid_network(pf_inception, state, device)
        rgb_batches = [b.expand(-1, 3, -1, -1).contiguous() for b in grey_batches]
        routes.append(("pytorch_fid",
                       lambda batch: pytorch_fid_features(model, device, batch), rgb_batches))
    rates, features = interleaved_rates(routes, args.warmup, args.repeats, device)

    result: dict = {
        "images": args.images, "size": args.size, "batch_size": args.batch_size,
        "warmup_batches": args.warmup, "repeats": args.repeats,
        "ours": {"route": "FeatureExtractor, antialias resize (default), BN folded, "
                          "channels-last, inference_mode",
                 "images_per_s": _median(rates["ours"]),
                 "images_per_s_runs": rates["ours"]},
    }
    if pf_inception is None:
        result["pytorch_fid"] = None
        result["pytorch_fid_skipped"] = f"{SKIPPED} ({pf_note})"
        return result
    result["pytorch_fid"] = {
        "route": f"pytorch_fid {pf_note} InceptionV3([3]), resize_input (F.interpolate "
                 "bilinear, align_corners=False, batched), normalize_input, no_grad, 3 channels",
        "images_per_s": _median(rates["pytorch_fid"]),
        "images_per_s_runs": rates["pytorch_fid"]}
    result["ratio_ours_over_pytorch_fid"] = (result["ours"]["images_per_s"]
                                             / result["pytorch_fid"]["images_per_s"])
    # each repeat's pair ran back to back, so its ratio sees one load level
    result["ratio_per_repeat"] = [a / b for a, b in zip(rates["ours"], rates["pytorch_fid"],
                                                        strict=True)]
    same_mode = FeatureExtractor(build_fid_inception(state), device, PYTORCH_FID_MODE)
    f_same = np.concatenate([same_mode.batch_features(b) for b in grey_batches])
    f_pf = features["pytorch_fid"]
    result["feature_difference_vs_pytorch_fid"] = {
        "max_abs_feature_pytorch_fid": float(np.abs(f_pf).max()),
        "ours_pytorch_fid_mode_max_abs": _max_abs(f_same, f_pf),
        "ours_antialias_mode_max_abs": _max_abs(features["ours"], f_pf),
        "over": f"all {args.images} images x {FEATURE_DIM} features",
    }
    return result


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


def _timed(fn: Callable[[], float], repeats: int) -> tuple[list[float], float]:
    times, value = [], float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return times, value


def sqrtm_fid(mu1, s1, mu2, s2) -> float:
    """pytorch-fid's calculation (``calculate_frechet_distance``) without its fallback for a
    singular product."""
    covmean = np.real(scipy.linalg.sqrtm(s1 @ s2))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def frechet_part(args) -> dict:
    f1 = synthetic_features(args.features, seed=1)
    f2 = synthetic_features(args.features, seed=2, shift=0.3)
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    result: dict = {"dimension": FEATURE_DIM, "n_per_set": args.features,
                    "repeats": args.repeats}
    eigen_times: list[float] = []
    sqrtm_times: list[float] = []
    eigen_fid = sqrtm_value = float("nan")
    for _repeat in range(args.repeats):  # interleaved, as the feature routes
        times, eigen_fid = _timed(lambda: frechet_distance(mu1, s1, mu2, s2), 1)
        eigen_times += times
        if not args.skip_sqrtm:
            times, sqrtm_value = _timed(lambda: sqrtm_fid(mu1, s1, mu2, s2), 1)
            sqrtm_times += times
    result["eigen_s"] = _median(eigen_times)
    result["eigen_s_runs"] = eigen_times
    result["fid_eigen"] = eigen_fid
    if args.skip_sqrtm:
        result["sqrtm_s"] = "skipped (--skip-sqrtm)"
    else:
        result["sqrtm_s"] = _median(sqrtm_times)
        result["sqrtm_s_runs"] = sqrtm_times
        result["ratio_sqrtm_s_over_eigen_s"] = result["sqrtm_s"] / result["eigen_s"]
        result["fid_sqrtm"] = sqrtm_value
        result["fid_relative_difference"] = abs(sqrtm_value - eigen_fid) / eigen_fid

    small1, small2 = f1[:args.small], f2[:args.small]

    def stats_route() -> float:
        return frechet_distance(*feature_statistics(small1), *feature_statistics(small2))

    stats_times, stats_fid = _timed(stats_route, args.repeats)
    direct_times, direct_fid = _timed(lambda: frechet_distance_from_features(small1, small2),
                                      args.repeats)
    small = {"n_per_set": args.small,
             "statistics_plus_eigen_s": _median(stats_times),
             "from_features_svd_s": _median(direct_times)}
    small["ratio"] = small["statistics_plus_eigen_s"] / small["from_features_svd_s"]
    small["fid_statistics_plus_eigen"] = stats_fid
    small["fid_from_features"] = direct_fid
    small["fid_relative_difference"] = abs(stats_fid - direct_fid) / stats_fid
    result["from_features"] = small
    return result


def kid_part(args) -> dict:
    f1 = synthetic_features(args.features, seed=1)
    f2 = synthetic_features(args.features, seed=2, shift=0.3)
    start = time.perf_counter()
    kid = kernel_inception_distance(f1, f2)
    return {"n_per_set": args.features, "subsets": kid.subsets, "subset_size": kid.subset_size,
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--images", type=int, default=32, help="images timed per route")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=1, help="warm-up batches per route")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs (median) of every route, features and Frechet alike")
    parser.add_argument("--weights", default=None,
                        help="the published FID Inception weights file (default: our cache)")
    parser.add_argument("--features", type=int, default=4096,
                        help="feature rows per set for the 2048-d statistics and KID")
    parser.add_argument("--small", type=int, default=1000,
                        help="feature rows per set for the from-features row")
    parser.add_argument("--skip-sqrtm", action="store_true", help="leave out scipy's sqrtm")
    parser.add_argument("--skip-features", action="store_true",
                        help="leave out the feature extraction part")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]  # other work on a shared machine shows here
    device = resolve_device(args.device)
    pf_inception, pf_note = import_pytorch_fid()
    if pf_inception is None:
        print(f"{SKIPPED} ({pf_note})", flush=True)
    state, weights_note = weights_state(args.weights)
    print(f"weights: {weights_note}", flush=True)

    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, python "
                   f"{platform.python_version()}",
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__, "scipy": scipy.__version__,
        "device": describe_device(device),
        "pytorch_fid": pf_note if pf_inception is not None else f"{SKIPPED} ({pf_note})",
        "weights": weights_note,
    }
    if not args.skip_features:
        report["features"] = features_part(args, device, state, pf_inception, pf_note)
    report["frechet"] = frechet_part(args)
    report["kid"] = kid_part(args)
    report["load_average_1min_start_end"] = [load_start, os.getloadavg()[0]]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
