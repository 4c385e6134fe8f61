"""Nearest-neighbour search speed and memory for the memorisation audit.

Times ``metrics.nearest.nearest_neighbours`` (chunked, exact, float32 torch matmul) beside
two baselines measured in the same run, on the same data, with the same thread count:

- ``numpy``: brute force as one would write it: ``q @ r.T`` for the whole [Q, N] matrix at
  once (float32), ``np.argpartition`` for the k best, then those k sorted;
- ``sklearn``: ``NearestNeighbors(metric="cosine", algorithm="brute", n_jobs=1)``, ``fit``
  and ``kneighbors`` (it computes cosine distances in chunks of its working memory).

at 10,000 reference x 1,000 queries (``--reference``, ``--queries``), k = 5, for D = 128 (a
re-identification embedding) and D = 1024 (the 32 x 32 pixel NCC space). Rows are unit
Gaussian vectors; half the queries are noisy copies of reference rows (a memorised image),
half are fresh. Throughput is query x reference pairs per second.

Memory: every (route, D) runs in its own fresh process. After the data are made, the process
resets its resident-set high-water mark (``/proc/self/clear_refs`` = 5, Linux) and reads its
current RSS; after the first (cold) run of the route it reads ``VmHWM``. The difference is
the peak resident memory the route needed above the data already in memory (libraries'
one-time allocations, thread pools and page-cache pages of a memmap included). Where the
reset is not possible the script says so and reports ``ru_maxrss`` minus the RSS before the
run, which can only under-report. The timed runs (median of ``--repeats``) follow the cold
run in the same process.

Agreement: the routes' indices are compared; a differing index counts as a near-tie when the
two candidates' float64 cosine similarities differ by less than 1e-6 (float32 round-off
decides those), otherwise as a disagreement.

Scale: the measured rate of ``nearest_neighbours`` is extrapolated to ChestX-ray14's 112,120
training images x 10,000 generated images, and one larger run is measured to check the
extrapolation: 112,120 x 1,000 at D = 128 with a read-only ``np.memmap`` reference (written
to a temporary file first, so it is read from a warm page cache), its first queries checked
against float64 brute force.

    OMP_NUM_THREADS=2 python tests/benchmarks/bench_audit.py [--threads 2] [--quick] \\
        [--repeats 3] [--reference 10000] [--queries 1000] [--no-large]

Prints a table, then one JSON object with the same figures. Timings on a shared machine move
with its load: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

K = 5
DIMS = (128, 1024)
CHESTXRAY14_IMAGES = 112_120
AUDIT_GENERATES = 10_000
ROUTES = ("ours", "numpy", "sklearn")
NEAR_TIE = 1e-6


# ---------------------------------------------------------------- data (same in every process)

def unit_gaussian_rows(rows: int, dim: int, seed: int, chunk: int = 8192) -> np.ndarray:
    """[rows, dim] float32 unit rows, made chunk by chunk so no large temporary is left in
    the RSS high-water mark before the measurement starts."""
    rng = np.random.default_rng(seed)
    out = np.empty((rows, dim), np.float32)
    for start in range(0, rows, chunk):
        block = rng.standard_normal((min(chunk, rows - start), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + len(block)] = block
    return out


def make_queries(reference: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Half noisy copies of reference rows (noise of norm about 0.5), half fresh rows."""
    rng = np.random.default_rng(seed)
    dim = reference.shape[1]
    copies = count // 2
    picks = rng.choice(len(reference), copies, replace=False)
    noisy = reference[picks] + 0.5 / np.sqrt(dim) * rng.standard_normal(
        (copies, dim), dtype=np.float32)
    fresh = unit_gaussian_rows(count - copies, dim, seed + 1)
    queries = np.vstack([noisy, fresh]).astype(np.float32)
    return queries / np.linalg.norm(queries, axis=1, keepdims=True)


def dataset(n: int, q: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    reference = unit_gaussian_rows(n, dim, seed=dim)
    return make_queries(reference, q, seed=10_000 + dim), reference


# ------------------------------------------------------------------------- the three routes

def route_ours(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    from cxrgan_desktop.metrics.nearest import nearest_neighbours

    return nearest_neighbours(queries, reference, k=K).indices


def route_numpy(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    scores = queries @ np.asarray(reference).T  # the whole [Q, N] matrix
    best = np.argpartition(-scores, K - 1, axis=1)[:, :K]
    best_scores = np.take_along_axis(scores, best, axis=1)
    order = np.lexsort((best, -best_scores), axis=1)
    return np.take_along_axis(best, order, axis=1)


def route_sklearn(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    model = NearestNeighbors(n_neighbors=K, metric="cosine", algorithm="brute", n_jobs=1)
    return model.fit(reference).kneighbors(queries, return_distance=False)


ROUTE_FUNCTIONS = {"ours": route_ours, "numpy": route_numpy, "sklearn": route_sklearn}


# ------------------------------------------------------------------ one route in its process

def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        return int(re.search(rf"{field}:\s+(\d+) kB", handle.read()).group(1))


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def worker(spec: dict) -> None:
    """Run one route on one data set; print one JSON line; save the indices."""
    threads = spec["threads"]
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)  # numpy's and scikit-learn's BLAS pools
    for name in ("sklearn.neighbors", "cxrgan_desktop.metrics.nearest"):
        __import__(name)  # imports are not the route's memory
    if spec.get("memmap"):
        reference = np.memmap(spec["memmap"], dtype=np.float32, mode="r",
                              shape=(spec["n"], spec["dim"]))
        queries = make_queries(reference, spec["q"], seed=10_000 + spec["dim"])
    else:
        queries, reference = dataset(spec["n"], spec["q"], spec["dim"])
    function = ROUTE_FUNCTIONS[spec["route"]]

    reset = _reset_peak()
    rss_before = _status_kib("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    indices = function(queries, reference)
    cold = time.perf_counter() - start
    if reset:
        peak_kib = _status_kib("VmHWM") - rss_before
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max(
            rss_before, maxrss_before)
    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        function(queries, reference)
        times.append(time.perf_counter() - start)
    np.save(spec["indices_out"], np.asarray(indices, dtype=np.int64))
    blas = sorted({f"{info['internal_api']} ({info['num_threads']} threads)"
                   for info in threadpool_info()})
    print(json.dumps({
        "cold_s": cold, "seconds": float(np.median(times)) if times else cold,
        "peak_mib": peak_kib / 1024, "peak_method": "VmHWM reset" if reset else "ru_maxrss",
        "torch_threads": torch.get_num_threads(), "blas": blas,
    }))


def run_in_process(spec: dict) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"{spec['route']} D={spec['dim']} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- comparisons

def agreement(found: np.ndarray, expected: np.ndarray, queries: np.ndarray,
              reference: np.ndarray) -> dict:
    """Differing indices split into near-ties (float64 gap < 1e-6) and disagreements."""
    differing = np.argwhere(found != expected)
    near_ties = 0
    for q, j in differing:
        a = float(np.dot(queries[q].astype(np.float64), reference[found[q, j]]))
        b = float(np.dot(queries[q].astype(np.float64), reference[expected[q, j]]))
        near_ties += abs(a - b) < NEAR_TIE
    return {"entries": int(found.size), "differing": len(differing),
            "near_ties": int(near_ties), "disagreements": int(len(differing) - near_ties)}


def float64_top_k(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    sims = queries.astype(np.float64) @ np.asarray(reference, dtype=np.float64).T
    return np.array([np.lexsort((np.arange(len(row)), -row))[:K] for row in sims])


def large_run(args: argparse.Namespace, folder: Path) -> dict:
    """Ours (and numpy's whole-matrix route, for its memory) at ChestX-ray14's reference size
    with a memmap reference; ours checked against float64 brute force on the first queries."""
    large_n, q, dim = args.large_reference, args.queries, 128
    path = folder / "reference.f32"
    write_memmap(path, large_n, dim)
    out: dict = {"n": large_n, "q": q, "dim": dim}
    indices = {}
    for route in ("ours", "numpy"):
        target = folder / f"large_{route}.npy"
        spec = {"route": route, "n": large_n, "q": q, "dim": dim, "threads": args.threads,
                "repeats": 1, "indices_out": str(target), "memmap": str(path)}
        row = run_in_process(spec)
        row["pairs_per_s"] = large_n * q / row["seconds"]
        out[route] = row
        indices[route] = np.load(target)
        print(f"  {route} {large_n:,} x {q:,} D={dim} memmap: {row['seconds']:.3f} s",
              flush=True)
    reference = np.memmap(path, dtype=np.float32, mode="r", shape=(large_n, dim))
    queries = make_queries(reference, q, seed=10_000 + dim)
    checked = min(50, q)
    expected = float64_top_k(queries[:checked], reference)
    out["checked_queries"] = checked
    out["vs_float64"] = agreement(indices["ours"][:checked], expected, queries, reference)
    out["vs_numpy"] = agreement(indices["ours"], indices["numpy"], queries, reference)
    return out


def write_memmap(path: Path, n: int, dim: int) -> None:
    rows = unit_gaussian_rows(n, dim, seed=dim)
    mapped = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, dim))
    mapped[:] = rows
    mapped.flush()
    del mapped


# ---------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2,
                        help="torch and BLAS threads in every route (default 2)")
    parser.add_argument("--reference", type=int, default=10_000,
                        help="reference rows N (default 10000)")
    parser.add_argument("--queries", type=int, default=1_000, help="query rows Q (default 1000)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs after the cold one, median reported (default 3)")
    parser.add_argument("--large-reference", type=int, default=CHESTXRAY14_IMAGES,
                        help="reference rows of the larger memmap run (default 112120)")
    parser.add_argument("--no-large", action="store_true", help="skip the larger run")
    parser.add_argument("--quick", action="store_true",
                        help="2,000 x 200, 20,000-row larger run, 1 repeat (a smoke test)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.reference, args.queries, args.repeats = 2_000, 200, 1
        args.large_reference = 20_000
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return
    n, q = args.reference, args.queries
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; "
          f"torch.set_num_threads({args.threads}) and threadpoolctl limit {args.threads} "
          "in every route's process", flush=True)

    results: dict = {"threads": args.threads, "reference": n, "queries": q, "k": K,
                     "routes": {}, "agreement": {}}
    with tempfile.TemporaryDirectory() as folder:
        for dim in DIMS:
            indices = {}
            for route in ROUTES:
                out = Path(folder) / f"{route}_{dim}.npy"
                spec = {"route": route, "n": n, "q": q, "dim": dim, "threads": args.threads,
                        "repeats": args.repeats, "indices_out": str(out)}
                row = run_in_process(spec)
                row["pairs_per_s"] = n * q / row["seconds"]
                results["routes"][f"{route}_{dim}"] = row
                indices[route] = np.load(out)
                print(f"  {route} D={dim}: {row['seconds']:.3f} s", flush=True)
            queries, reference = dataset(n, q, dim)
            results["agreement"][str(dim)] = {
                other: agreement(indices["ours"], indices[other], queries, reference)
                for other in ("numpy", "sklearn")}
            results["routes"][f"blas_{dim}"] = row["blas"]

        if not args.no_large:
            results["large"] = large_run(args, Path(folder))
    report(results, args)


def report(results: dict, args: argparse.Namespace) -> None:
    n, q = results["reference"], results["queries"]
    routes = results["routes"]
    print()
    print(f"Nearest neighbours, k={K}, {n:,} reference x {q:,} queries, "
          f"{args.threads} threads, median of {args.repeats} after a cold run")
    header = (f"{'route':<9}{'D':>6}{'seconds':>10}{'Mpairs/s':>10}{'vs numpy':>10}"
              f"{'vs sklearn':>12}{'cold s':>9}{'peak MiB':>10}")
    print(header)
    print("-" * len(header))
    for dim in DIMS:
        base_numpy = routes[f"numpy_{dim}"]["seconds"]
        base_sklearn = routes[f"sklearn_{dim}"]["seconds"]
        for route in ROUTES:
            row = routes[f"{route}_{dim}"]
            print(f"{route:<9}{dim:>6}{row['seconds']:>10.3f}{row['pairs_per_s'] / 1e6:>10.1f}"
                  f"{base_numpy / row['seconds']:>9.2f}x{base_sklearn / row['seconds']:>11.2f}x"
                  f"{row['cold_s']:>9.3f}{row['peak_mib']:>10.1f}")
    methods = {row["peak_method"] for key, row in routes.items() if not key.startswith("blas")}
    print(f"peak MiB: resident high-water mark above the loaded data, first run, own process "
          f"({', '.join(sorted(methods))}); 'vs' = that baseline's seconds / this route's")
    print(f"BLAS: {'; '.join(routes['blas_128'])}; torch threads "
          f"{routes['ours_128']['torch_threads']}")
    print()
    print("Agreement of ours with each baseline (indices; near-tie = float64 gap < 1e-6):")
    for dim, pair in results["agreement"].items():
        for other, a in pair.items():
            print(f"  D={dim:<5} vs {other:<8} {a['entries'] - a['differing']:,} of "
                  f"{a['entries']:,} equal, {a['near_ties']} near-ties, "
                  f"{a['disagreements']} disagreements")
    print()
    print(f"Extrapolation of ours to ChestX-ray14 scale, {CHESTXRAY14_IMAGES:,} x "
          f"{AUDIT_GENERATES:,} (from the measured rate):")
    for dim in DIMS:
        rate = routes[f"ours_{dim}"]["pairs_per_s"]
        print(f"  D={dim:<5} {CHESTXRAY14_IMAGES * AUDIT_GENERATES / rate:8.1f} s")
    large = results.get("large")
    if large:
        rate = routes["ours_128"]["pairs_per_s"]
        predicted = large["n"] * large["q"] / rate
        ours, numpy_row = large["ours"], large["numpy"]
        print(f"Measured: {large['n']:,} x {large['q']:,}, D=128, np.memmap reference "
              "(warm page cache), median of 1 after a cold run:")
        print(f"  ours  {ours['seconds']:8.2f} s {ours['pairs_per_s'] / 1e6:8.1f} Mpairs/s, "
              f"predicted from the rate above {predicted:.2f} s "
              f"(measured / predicted {ours['seconds'] / predicted:.2f}), "
              f"peak {ours['peak_mib']:.1f} MiB")
        print(f"  numpy {numpy_row['seconds']:8.2f} s "
              f"{numpy_row['pairs_per_s'] / 1e6:8.1f} Mpairs/s, "
              f"peak {numpy_row['peak_mib']:.1f} MiB (whole [Q, N] matrix)")
        for name, a in (("float64 brute force, first "
                         f"{large['checked_queries']} queries", large["vs_float64"]),
                        ("numpy", large["vs_numpy"])):
            print(f"  ours vs {name}: {a['entries'] - a['differing']:,} of {a['entries']:,} "
                  f"equal, {a['near_ties']} near-ties, {a['disagreements']} disagreements")
    print()
    print(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
