"""Precision, recall, density and coverage against a brute-force reference built from the
papers' definitions with scipy's cdist, plus cases whose answer follows from construction."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.metrics.prdc import PRDCResult, precision_recall_density_coverage


def reference_prdc(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Definitions of Kynkaanniemi et al. 2019 and Naeem et al. 2020, written out in full."""

    def kth_other_neighbour(points: np.ndarray) -> np.ndarray:
        distances = cdist(points, points)
        np.fill_diagonal(distances, np.inf)  # a sample is not its own neighbour
        return np.sort(distances, axis=1)[:, k - 1]

    real_radius = kth_other_neighbour(real)
    fake_radius = kth_other_neighbour(fake)
    n, m = len(real), len(fake)
    d = cdist(real, fake)  # d[i, j]: real i to fake j
    precision = sum(any(d[i, j] <= real_radius[i] for i in range(n)) for j in range(m)) / m
    recall = sum(any(d[i, j] <= fake_radius[j] for j in range(m)) for i in range(n)) / n
    density = sum(int(d[i, j] <= real_radius[i]) for i in range(n) for j in range(m)) / (k * m)
    coverage = sum(int(d[i, :].min() <= real_radius[i]) for i in range(n)) / n
    return {"precision": precision, "recall": recall, "density": density,
            "coverage": coverage}


def as_dict(result: PRDCResult) -> dict[str, float]:
    return {"precision": result.precision, "recall": result.recall,
            "density": result.density, "coverage": result.coverage}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_matches_brute_force_reference(seed, k):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(60, 8))
    fake = rng.normal(loc=0.4, scale=1.3, size=(50, 8))  # overlapping, not identical
    got = precision_recall_density_coverage(real, fake, k=k)
    expected = reference_prdc(real, fake, k)
    assert as_dict(got) == pytest.approx(expected, abs=1e-12)
    assert (got.k, got.n_real, got.n_fake, got.feature_dim) == (k, 60, 50, 8)


def test_reference_cases_are_not_trivial():
    """The random comparison above must exercise values strictly between 0 and 1."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 8))
    fake = rng.normal(loc=0.4, scale=1.3, size=(50, 8))
    got = precision_recall_density_coverage(real, fake)
    for value in (got.precision, got.recall, got.coverage):
        assert 0.0 < value < 1.0


@pytest.mark.parametrize("k", [1, 5, 7])
@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_identical_sets(k, chunk_size):
    """Each real ball holds its own centre and its k neighbours, all of them also generated
    samples: k + 1 per ball, so density = N (k + 1) / (k N) = (k + 1) / k, not 1."""
    real = np.random.default_rng(3).normal(size=(40, 6))
    got = precision_recall_density_coverage(real, real.copy(), k=k, chunk_size=chunk_size)
    assert (got.precision, got.recall, got.coverage) == (1.0, 1.0, 1.0)
    assert got.density == pytest.approx((k + 1) / k, abs=1e-12)


def test_far_apart_clusters_score_zero():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(30, 5))
    fake = rng.normal(loc=1000.0, size=(25, 5))
    got = precision_recall_density_coverage(real, fake)
    assert as_dict(got) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_fake_set_covering_one_of_two_real_clusters():
    """Generated samples sit 1e-6 from the real samples of cluster A, far inside every ball
    (radii are of order 1): all are realistic, and exactly the A half of the real set is
    recalled and covered; cluster B, 100 away, is missed."""
    rng = np.random.default_rng(5)
    cluster_a = rng.normal(size=(30, 4))
    cluster_b = rng.normal(loc=100.0, size=(30, 4))
    real = np.vstack([cluster_a, cluster_b])
    fake = cluster_a + 1e-6 * rng.normal(size=cluster_a.shape)
    got = precision_recall_density_coverage(real, fake, k=5)
    assert got.precision == 1.0
    assert got.recall == 30 / 60
    assert got.coverage == 30 / 60
    assert got.density == pytest.approx(reference_prdc(real, fake, 5)["density"], abs=1e-12)


@pytest.mark.parametrize("chunk_size", [1, 3, 16])
def test_chunked_equals_unchunked(chunk_size):
    rng = np.random.default_rng(6)
    real = rng.normal(size=(45, 10))
    fake = rng.normal(loc=0.3, size=(52, 10))
    whole = precision_recall_density_coverage(real, fake, chunk_size=10_000)
    chunked = precision_recall_density_coverage(real, fake, chunk_size=chunk_size)
    assert chunked == whole


def test_float32_input_is_accepted():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(40, 8)).astype(np.float32)
    fake = rng.normal(size=(40, 8)).astype(np.float32)
    got = precision_recall_density_coverage(real, fake, k=3)
    expected = reference_prdc(real.astype(np.float64), fake.astype(np.float64), 3)
    assert as_dict(got) == pytest.approx(expected, abs=1e-12)


def test_record_is_json():
    rng = np.random.default_rng(8)
    got = precision_recall_density_coverage(rng.normal(size=(20, 3)), rng.normal(size=(20, 3)))
    record = json.loads(json.dumps(got.to_record()))
    assert record["k"] == 5 and record["n_real"] == 20 and record["feature_dim"] == 3
    assert record["precision"] == got.precision and record["density"] == got.density


GOOD = np.zeros((10, 4)) + np.arange(10)[:, None]


@pytest.mark.parametrize(("real", "fake", "kwargs", "match"), [
    (np.zeros(10), GOOD, {}, "2-D"),
    (GOOD, np.zeros((2, 5, 4)), {}, "2-D"),
    (GOOD, GOOD[:, :3], {}, "dimension"),
    (np.where(np.eye(10, 4) > 0, np.nan, GOOD), GOOD, {}, "NaN or infinite"),
    (GOOD, np.where(np.eye(10, 4) > 0, np.inf, GOOD), {}, "NaN or infinite"),
    (GOOD[:5], GOOD, {}, "real set has 5 samples"),
    (GOOD, GOOD[:3], {"k": 3}, "generated set has 3 samples"),
    (GOOD, GOOD, {"k": 0}, "k must be"),
    (GOOD, GOOD, {"k": 2.5}, "k must be"),
    (GOOD, GOOD, {"chunk_size": 0}, "chunk_size"),
    (np.zeros((10, 0)), np.zeros((10, 0)), {}, "no columns"),
    (np.array([["a"] * 4] * 10), GOOD, {}, "real numbers"),
])
def test_invalid_input(real, fake, kwargs, match):
    with pytest.raises(ValueError, match=match):
        precision_recall_density_coverage(real, fake, **kwargs)


def test_cancel_before_start():
    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        precision_recall_density_coverage(GOOD, GOOD, cancel=event)


def test_cancel_is_checked_between_blocks():
    event = threading.Event()
    calls = []

    def progress(fraction: float, message: str = "") -> None:
        calls.append(fraction)
        event.set()  # asked to stop after the first block

    with pytest.raises(Cancelled):
        precision_recall_density_coverage(GOOD, GOOD, chunk_size=2, progress=progress,
                                          cancel=event)
    assert len(calls) == 1


def test_progress_rises_to_one():
    seen: list[tuple[float, str]] = []
    precision_recall_density_coverage(GOOD, GOOD[:8], chunk_size=3,
                                      progress=lambda f, m="": seen.append((f, m)))
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert all(message.startswith("PRDC") for _, message in seen)
