"""Statistics, the Fréchet distance, KID and statistics files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from cxrgan_desktop.metrics.frechet import (
    feature_statistics,
    fid,
    frechet_distance,
    frechet_distance_from_features,
    trace_sqrt_product,
)
from cxrgan_desktop.metrics.kid import kernel_inception_distance, polynomial_mmd2
from cxrgan_desktop.metrics.stats_file import FeatureStats, StatsFileError, load_stats, save_stats


def _features(rng: np.random.Generator, n: int, dim: int, shift: float = 0.0) -> np.ndarray:
    """Inception-like features: non-negative, correlated, of decaying variance."""
    mixing = rng.standard_normal((dim, dim)) * np.exp(-np.arange(dim) / (dim / 8))[None, :]
    return np.maximum(rng.standard_normal((n, dim)) @ mixing.T * 0.05 + 0.3 + shift, 0.0)


def _scipy_fid(mu1, s1, mu2, s2) -> float:
    """The textbook route, independently: a general matrix square root (scipy) in float64."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_statistics_are_float64_mean_and_unbiased_covariance():
    x = np.random.default_rng(0).standard_normal((50, 7)).astype(np.float32)
    mu, sigma = feature_statistics(x)
    assert mu.dtype == sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-10)
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(x[:1])


@pytest.mark.parametrize("n", [40, 3000])  # singular (N < D) and full-rank covariance
def test_identical_sets_give_zero(n):
    x = _features(np.random.default_rng(1), n, 2048 if n < 100 else 512)
    mu, sigma = feature_statistics(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_scipy_sqrtm(seed):
    rng = np.random.default_rng(seed)
    mu1, s1 = feature_statistics(_features(rng, 400, 96))
    mu2, s2 = feature_statistics(_features(rng, 300, 96, shift=0.02))
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours > 0.01
    assert ours == pytest.approx(_scipy_fid(mu1, s1, mu2, s2), rel=1e-6)


@pytest.mark.parametrize(("n1", "n2"), [(6, 5), (40, 90)])
def test_the_feature_route_equals_the_statistics_route(n1, n2):
    rng = np.random.default_rng(n1)
    x, y = _features(rng, n1, 2048), _features(rng, n2, 2048, shift=0.01)
    by_stats = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    assert frechet_distance_from_features(x, y) == pytest.approx(by_stats, rel=1e-9)
    assert fid(*feature_statistics(x), *feature_statistics(y), x, y) == pytest.approx(
        by_stats, rel=1e-9)
    assert frechet_distance_from_features(x, x) < 1e-9


def test_trace_term_is_symmetric_and_matches_the_definition():
    rng = np.random.default_rng(3)
    _, s1 = feature_statistics(_features(rng, 200, 32))
    _, s2 = feature_statistics(_features(rng, 200, 32, shift=0.1))
    expected = np.real(np.trace(scipy.linalg.sqrtm(s1 @ s2)))
    assert trace_sqrt_product(s1, s2) == pytest.approx(expected, rel=1e-9)
    assert trace_sqrt_product(s2, s1) == pytest.approx(expected, rel=1e-9)


def test_mismatched_statistics_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def _naive_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    m, d = x.shape

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_mmd_matches_the_definition():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((9, 5)), rng.standard_normal((9, 5)) + 0.3
    assert polynomial_mmd2(x, y) == pytest.approx(_naive_mmd2(x, y), rel=1e-12)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(5)
    same = kernel_inception_distance(_features(rng, 300, 64), _features(
        np.random.default_rng(5), 300, 64), subsets=20, subset_size=100)
    different = kernel_inception_distance(_features(rng, 300, 64), _features(
        np.random.default_rng(6), 300, 64, shift=0.05), subsets=20, subset_size=100)
    assert abs(same.mean) < 3 * same.std + 1e-12
    assert different.mean > 10 * different.std > 0


def test_kid_is_reproducible_and_clamps_the_subset_size():
    rng = np.random.default_rng(6)
    a, b = _features(rng, 30, 16), _features(rng, 20, 16, shift=0.1)
    first = kernel_inception_distance(a, b, subsets=5, subset_size=1000, seed=3)
    again = kernel_inception_distance(a, b, subsets=5, subset_size=1000, seed=3)
    assert first == again
    assert first.subset_size == 20


def test_stats_file_round_trip_and_pytorch_fid_compatibility(tmp_path):
    rng = np.random.default_rng(7)
    features = rng.standard_normal((10, 2048)).astype(np.float32)
    mu, sigma = feature_statistics(features)
    settings = {"resize": "antialias", "weights_sha256": "ab" * 32, "input_size": 299}
    path = tmp_path / "real.npz"
    save_stats(path, FeatureStats(mu, sigma, 10, settings, features), with_features=True)
    loaded = load_stats(path)
    np.testing.assert_array_equal(loaded.mu, mu)
    np.testing.assert_array_equal(loaded.sigma, sigma)
    assert loaded.n == 10 and loaded.settings == settings
    np.testing.assert_array_equal(loaded.features, features)
    with np.load(path) as data:  # what pytorch-fid reads
        np.testing.assert_array_equal(data["mu"][:], mu)
    theirs = tmp_path / "pytorch_fid.npz"
    np.savez(theirs, mu=mu, sigma=sigma)  # how pytorch-fid --save-stats writes
    plain = load_stats(theirs)
    assert plain.n is None and plain.settings is None and plain.features is None


def test_bad_stats_files_are_refused_clearly(tmp_path):
    wrong_shape = tmp_path / "small.npz"
    np.savez(wrong_shape, mu=np.zeros(64), sigma=np.eye(64))
    with pytest.raises(StatsFileError, match=r"\[2048\]"):
        load_stats(wrong_shape)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, mu=np.array([object()], dtype=object), sigma=np.eye(2))
    with pytest.raises(StatsFileError, match="pickled.npz"):
        load_stats(pickled)
    truncated = tmp_path / "truncated.npz"
    good = tmp_path / "good.npz"
    np.savez(good, mu=np.zeros(2048), sigma=np.eye(2048))
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(StatsFileError, match="truncated.npz"):
        load_stats(truncated)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(StatsFileError, match="expected 'mu' and 'sigma'"):
        load_stats(other)
