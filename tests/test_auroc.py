"""The one AUROC (``metrics.auroc``) against scikit-learn and against the pair count written
from its definition, with the edges every caller relies on (a missing class, ties, a truth
column that is not boolean)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrgan_desktop.metrics.auroc import auroc, auroc_per_label


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
