"""The one AUROC (``metrics.auroc``) and the one DeLong computation (``metrics.auroc_compare``)
against scikit-learn and against the definitions written out as m x n comparison tables, with
the edges every caller relies on (a missing class, ties, complete separation, a truth column
that is not boolean). The paired test is also checked in tests/test_tstr.py."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import beta
from sklearn.metrics import roc_auc_score

from cxrgan_desktop.metrics.auroc import auroc, auroc_per_label
from cxrgan_desktop.metrics.auroc_compare import delong, delong_covariance, delong_paired


def random_ratings(rng: np.random.Generator, n_pos: int, n_neg: int, levels: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Ordinal ratings with a class shift, so ties and imperfect separation both occur."""
    shift = rng.uniform(0, 2)
    pos = np.clip(np.round(rng.normal(shift, 1.0, n_pos) + levels / 2), 1, levels)
    neg = np.clip(np.round(rng.normal(0.0, 1.0, n_neg) + levels / 2), 1, levels)
    scores = np.concatenate([pos, neg])
    positive = np.concatenate([np.ones(n_pos, bool), np.zeros(n_neg, bool)])
    order = rng.permutation(scores.size)
    return scores[order], positive[order]


def random_tables(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n_pos, n_neg = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        levels = int(rng.choice([2, 3, 5, 6, 10, 100]))
        yield random_ratings(rng, n_pos, n_neg, levels)


def _pairwise_auroc(scores, truth) -> float:
    """The definition: the share of positive-negative pairs ordered right, ties half."""
    pos = [s for s, t in zip(scores, truth, strict=True) if t]
    neg = [s for s, t in zip(scores, truth, strict=True) if not t]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auroc_matches_sklearn():
    for scores, positive in random_tables(seed=2, count=150):
        assert auroc(scores, positive) == pytest.approx(roc_auc_score(positive, scores),
                                                        rel=1e-12, abs=1e-12)
    rng = np.random.default_rng(10)
    probabilities, truth = rng.random(500), rng.random(500) < 0.1  # classifier-like
    assert auroc(probabilities, truth) == pytest.approx(roc_auc_score(truth, probabilities),
                                                        rel=1e-12)


def test_auroc_matches_pair_counting_with_ties():
    for scores, positive in random_tables(seed=3, count=100):
        assert auroc(scores, positive) == pytest.approx(_pairwise_auroc(scores, positive),
                                                        rel=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.integers(0, 6, size=40).astype(float)  # many ties
        truth = rng.random(40) < 0.3
        if truth.all() or not truth.any():
            continue
        assert auroc(scores, truth) == pytest.approx(_pairwise_auroc(scores, truth))


def test_auroc_edges():
    assert auroc([0.1, 0.9], [False, True]) == 1.0
    assert auroc([0.9, 0.1], [False, True]) == 0.0
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auroc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert auroc([3, 3, 3, 3], [0, 1, 0, 1]) == 0.5
    assert auroc([1.0, np.inf], [0, 1]) == 1.0  # an infinite logit still has a rank
    # no ROC curve without both classes, and no rank for a NaN score: undefined, not an error
    assert math.isnan(auroc([0.2, 0.3], [True, True]))
    assert math.isnan(auroc([1, 2, 3], [0, 0, 0]))
    assert math.isnan(auroc([], []))
    assert math.isnan(auroc([1, float("nan"), 3], [True, False, False]))
    with pytest.raises(ValueError, match="differ in length"):
        auroc([1, 2], [True])
    with pytest.raises(ValueError, match="boolean"):
        auroc([1, 2], ["real", "synthetic"])  # truthy strings must not pass as labels
    with pytest.raises(ValueError, match="boolean"):
        auroc([1, 2], [0, 2])


def test_auroc_per_label():
    per = auroc_per_label(np.array([[0.1, 0.5], [0.9, 0.5]]), np.array([[0, 1], [1, 0]]))
    assert per == [1.0, 0.5]
    rng = np.random.default_rng(11)
    scores, truth = rng.random((60, 3)), rng.random((60, 3)) < 0.4
    truth[:, 2] = False
    per = auroc_per_label(scores, truth)
    assert per[:2] == pytest.approx([roc_auc_score(truth[:, j], scores[:, j]) for j in (0, 1)])
    assert math.isnan(per[2])
    with pytest.raises(ValueError):
        auroc_per_label(scores, truth[:, :2])


# --- DeLong -------------------------------------------------------------------------------------

def _naive_delong(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """DeLong 1988 straight from the definition: the m x n kernel table, its row and column
    means (structural components), and their sample variances."""
    pos, neg = scores[positive], scores[~positive]
    m, n = pos.size, neg.size
    psi = np.empty((m, n))
    for i in range(m):
        for j in range(n):
            psi[i, j] = 1.0 if pos[i] > neg[j] else 0.5 if pos[i] == neg[j] else 0.0
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    s10 = ((v10 - auc) ** 2).sum() / (m - 1)
    s01 = ((v01 - auc) ** 2).sum() / (n - 1)
    return auc, s10 / m + s01 / n


def test_delong_matches_naive_structural_components():
    rng = np.random.default_rng(4)
    for _ in range(120):
        scores, positive = random_ratings(rng, int(rng.integers(2, 40)),
                                           int(rng.integers(2, 40)),
                                           int(rng.choice([2, 5, 6, 50])))
        result = delong(scores, positive)
        auc, variance = _naive_delong(scores, positive)
        assert result.auc == pytest.approx(auc, rel=1e-12)
        assert result.auc == pytest.approx(roc_auc_score(positive, scores), rel=1e-12)
        assert result.se ** 2 == pytest.approx(variance, rel=1e-9, abs=1e-15)
        assert 0.0 <= result.low <= result.auc <= result.high <= 1.0
        if result.low > 0 and result.high < 1:  # unclipped: symmetric, z = 1.96
            assert result.high - result.auc == pytest.approx(1.959963984540054 * result.se)


def test_delong_interval_shrinks_with_more_cases():
    rng = np.random.default_rng(5)
    widths = []
    for size in (20, 80, 320, 1280):
        draws = [delong(*random_ratings(rng, size, size, 6)) for _ in range(5)]
        widths.append(np.mean([d.high - d.low for d in draws]))
    assert all(a > b for a, b in itertools.pairwise(widths))
    # roughly 1/sqrt(n): quadrupling the cases about halves the width
    assert widths[-1] / widths[0] == pytest.approx(1 / 8, rel=0.35)
    wide = delong(*random_ratings(np.random.default_rng(6), 30, 30, 5), level=0.99)
    narrow = delong(*random_ratings(np.random.default_rng(6), 30, 30, 5), level=0.80)
    assert wide.high - wide.low > narrow.high - narrow.low


def test_delong_edges():
    # complete separation: not "1.000-1.000" but the exact bound over 3 disjoint pairs, each
    # right with probability theta: theta ** 3 = 0.025 at the lower end (scipy's beta)
    perfect = delong([1, 2, 3, 4, 5, 6, 7], [0, 0, 0, 1, 1, 1, 1])
    assert perfect.auc == 1.0 and perfect.high == 1.0
    assert perfect.low == pytest.approx(beta.ppf(0.025, 3, 1)) == pytest.approx(0.025 ** (1 / 3))
    inverted = delong([6, 5, 4, 3, 2, 1], [0, 0, 0, 1, 1, 1])
    assert inverted.auc == 0.0 and inverted.low == 0.0
    assert inverted.high == pytest.approx(1 - 0.025 ** (1 / 3))
    single = delong([1, 2, 3], [0, 0, 1])
    assert single.auc == 1.0 and single.low == pytest.approx(0.025) and single.high == 1.0
    small = delong([1, 2, 3, 2.5], [0, 0, 1, 1])  # AUC 1 with 2 of each: still a real interval
    assert small.low < 1.0
    empty = delong([1, 2, 3], [1, 1, 1])
    assert all(math.isnan(value) for value in (empty.auc, empty.se, empty.low, empty.high))
    clipped = delong([1, 2, 3, 4, 2.5], [0, 0, 1, 1, 0])
    assert clipped.high <= 1.0
    level = delong([1, 2, 3, 4, 5, 6, 7], [0, 0, 0, 1, 1, 1, 1], level=0.9)
    assert level.low == pytest.approx(0.05 ** (1 / 3))  # alpha / 2 on the one open side
    undefined = delong([1, float("nan"), 2], [0, 1, 1])
    assert all(math.isnan(v) for v in (undefined.auc, undefined.se, undefined.low, undefined.high))
    with pytest.raises(ValueError):
        delong([1, 2, 3, 4], [0, 0, 1, 1], level=1.0)


def _naive_covariance(score_sets: list[np.ndarray], positive: np.ndarray) -> np.ndarray:
    """DeLong's covariance matrix from the definition: per model the m x n kernel table, then
    S10 and S01 summed by hand, element by element."""
    tables = []
    for scores in score_sets:
        pos, neg = scores[positive], scores[~positive]
        tables.append(np.array([[1.0 if p > q else 0.5 if p == q else 0.0 for q in neg]
                                for p in pos]))
    m, n = tables[0].shape
    k = len(tables)
    out = np.zeros((k, k))
    for r in range(k):
        for s in range(k):
            a, b = tables[r], tables[s]
            s10 = sum((a[i].mean() - a.mean()) * (b[i].mean() - b.mean())
                      for i in range(m)) / (m - 1)
            s01 = sum((a[:, j].mean() - a.mean()) * (b[:, j].mean() - b.mean())
                      for j in range(n)) / (n - 1)
            out[r, s] = s10 / m + s01 / n
    return out


def test_delong_covariance_serves_both_the_single_and_the_paired_result():
    rng = np.random.default_rng(12)
    positive = rng.random(70) < 0.4
    sets = [np.round(positive * shift + rng.normal(0, 1, 70), 1) for shift in (0.5, 1.0, 2.0)]
    aucs, covariance = delong_covariance(sets, positive)
    assert aucs == pytest.approx([roc_auc_score(positive, s) for s in sets], rel=1e-12)
    np.testing.assert_allclose(covariance, _naive_covariance(sets, positive), rtol=1e-10)
    single = delong(sets[1], positive)
    assert single.se ** 2 == pytest.approx(covariance[1, 1], rel=1e-12)
    paired = delong_paired(sets[0], sets[2], positive)
    assert paired.se ** 2 == pytest.approx(
        covariance[0, 0] + covariance[2, 2] - 2 * covariance[0, 2], rel=1e-12)
    assert (paired.auc_a, paired.auc_b) == pytest.approx((aucs[0], aucs[2]), rel=1e-12)
    aucs, covariance = delong_covariance(sets, np.arange(70) < 1)  # one positive: no variance
    assert np.isfinite(aucs).all() and np.isnan(covariance).all()
    aucs, covariance = delong_covariance(sets, np.zeros(70, bool))  # no positives: no AUROC
    assert np.isnan(aucs).all() and np.isnan(covariance).all()
