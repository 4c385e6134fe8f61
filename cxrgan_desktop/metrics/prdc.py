"""Precision, recall, density and coverage of a generated set against a real one.

FID folds fidelity (are generated images realistic?) and diversity (do they span the real
variety?) into one number; these four separate them, on the same feature vectors FID uses.

- Improved precision and recall (Kynkaanniemi et al. 2019): every sample gets a ball whose
  radius is the distance to its k-th nearest neighbour within its own set (the sample itself
  left out). Precision is the fraction of generated samples inside at least one real ball;
  recall is the fraction of real samples inside at least one generated ball.
- Density and coverage (Naeem et al. 2020) use the real balls only, which makes them less
  sensitive to outliers: density = (1 / kM) * sum over the M generated samples of the number
  of real balls that hold it (1 on average when both sets come from one distribution, can
  exceed 1); coverage is the fraction of real samples whose own ball holds at least one
  generated sample.

A sample on a ball's boundary counts as inside (distance <= radius), as in the reference
implementation (clovaai/generative-evaluation-prdc); k = 5 is the papers' default. Distances
are Euclidean, from ||a||^2 + ||b||^2 - 2 a.b in float64 (clipped at 0) over blocks of rows,
so 10,000 x 10,000 samples of 2048 features need one block of memory, not an N x N matrix.
Comparisons are made on squared distances, which orders samples exactly as the distances do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress

DEFAULT_K = 5
BLOCK_ELEMENTS = 1 << 22  # float64 entries per distance block: 32 MiB


@dataclass(frozen=True)
class PRDCResult:
    """The four measures, each in [0, 1] except density (>= 0, about 1 for matched sets)."""

    precision: float
    recall: float
    density: float
    coverage: float
    k: int
    n_real: int
    n_fake: int
    feature_dim: int

    def to_record(self) -> dict[str, float | int | str]:
        return {"precision": self.precision, "recall": self.recall,
                "density": self.density, "coverage": self.coverage, "k": self.k,
                "n_real": self.n_real, "n_fake": self.n_fake,
                "feature_dim": self.feature_dim, "distance": "euclidean",
                "boundary": "inside (<=)"}


def _as_features(features: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim != 2:
        raise ValueError(f"{name} features must be a 2-D array [N, D], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise ValueError(f"{name} features must be real numbers, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float64)
    if array.shape[1] == 0:
        raise ValueError(f"{name} features have no columns (D = 0)")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} features contain NaN or infinite values")
    return array


def _blocks(rows: int, columns: int, chunk_size: int | None) -> Iterator[tuple[int, int]]:
    """Row ranges [start, stop) such that a block of rows x columns stays small."""
    size = chunk_size if chunk_size is not None else max(1, BLOCK_ELEMENTS // max(columns, 1))
    for start in range(0, rows, size):
        yield start, min(start + size, rows)


def _squared_distances(a: np.ndarray, a_norms: np.ndarray, b: np.ndarray,
                       b_norms: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] squared Euclidean distances; clipped at 0 against rounding."""
    block = a @ b.T
    block *= -2.0
    block += a_norms[:, None]
    block += b_norms[None, :]
    np.maximum(block, 0.0, out=block)
    return block


class _Ticker:
    """Checks the cancel event and reports progress in units of distance entries computed."""

    def __init__(self, total: int, progress: ProgressFn, cancel: threading.Event | None):
        self.total = total
        self.done = 0
        self.progress = progress
        self.cancel = cancel
        self.phase = ""

    def check(self) -> None:
        check_cancel(self.cancel)

    def advance(self, entries: int) -> None:
        self.done += entries
        self.progress(self.done / self.total, self.phase)


def _kth_neighbour_radii(x: np.ndarray, norms: np.ndarray, k: int, chunk_size: int | None,
                         tick: _Ticker) -> np.ndarray:
    """Squared distance from each row of x to its k-th nearest other row of x."""
    radii = np.empty(len(x))
    for start, stop in _blocks(len(x), len(x), chunk_size):
        tick.check()
        block = _squared_distances(x[start:stop], norms[start:stop], x, norms)
        rows = np.arange(stop - start)
        block[rows, start + rows] = np.inf  # the sample itself is not its own neighbour
        radii[start:stop] = np.partition(block, k - 1, axis=1)[:, k - 1]
        tick.advance((stop - start) * len(x))
    return radii


def precision_recall_density_coverage(
        real_features: np.ndarray, fake_features: np.ndarray, *, k: int = DEFAULT_K,
        chunk_size: int | None = None, progress: ProgressFn = no_progress,
        cancel: threading.Event | None = None) -> PRDCResult:
    """Precision, recall, density and coverage of ``fake_features`` against ``real_features``.

    Both are [N, D] and [M, D] feature arrays (e.g. 2048-d Inception pool features), any
    real dtype, computed in float64. ``chunk_size`` is the number of rows per distance block
    (default: blocks of about 32 MiB); it changes memory and speed, not the result. Each
    side needs more than ``k`` samples, since a ball's radius is the distance to the k-th
    other sample. Raises ValueError for bad input and Cancelled when ``cancel`` is set.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    k = int(k)
    real = _as_features(real_features, "real")
    fake = _as_features(fake_features, "generated")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real and generated features differ in dimension: "
                         f"{real.shape[1]} vs {fake.shape[1]}")
    for name, array in (("real", real), ("generated", fake)):
        if len(array) <= k:
            raise ValueError(f"{name} set has {len(array)} samples; k = {k} needs at least "
                             f"{k + 1}")
    n_real, n_fake = len(real), len(fake)
    real_norms = np.einsum("ij,ij->i", real, real)
    fake_norms = np.einsum("ij,ij->i", fake, fake)

    tick = _Ticker(n_real * n_real + n_fake * n_fake + n_real * n_fake, progress, cancel)
    tick.phase = "PRDC: real neighbourhoods"
    real_radii = _kth_neighbour_radii(real, real_norms, k, chunk_size, tick)
    tick.phase = "PRDC: generated neighbourhoods"
    fake_radii = _kth_neighbour_radii(fake, fake_norms, k, chunk_size, tick)

    tick.phase = "PRDC: real against generated"
    balls_holding_fake = np.zeros(n_fake, dtype=np.int64)  # real balls around each fake
    real_covered = np.zeros(n_real, dtype=bool)  # a fake lies in this real sample's ball
    real_recalled = np.zeros(n_real, dtype=bool)  # this real sample lies in a fake ball
    for start, stop in _blocks(n_real, n_fake, chunk_size):
        tick.check()
        block = _squared_distances(real[start:stop], real_norms[start:stop], fake, fake_norms)
        inside_real = block <= real_radii[start:stop, None]
        balls_holding_fake += inside_real.sum(axis=0)
        real_covered[start:stop] = inside_real.any(axis=1)
        real_recalled[start:stop] = (block <= fake_radii[None, :]).any(axis=1)
        tick.advance((stop - start) * n_fake)

    return PRDCResult(
        precision=float(np.mean(balls_holding_fake > 0)),
        recall=float(np.mean(real_recalled)),
        density=float(balls_holding_fake.sum() / (k * n_fake)),
        coverage=float(np.mean(real_covered)),
        k=k, n_real=n_real, n_fake=n_fake, feature_dim=int(real.shape[1]))
