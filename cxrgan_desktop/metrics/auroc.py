"""Area under the ROC curve, exact, from ranks.

Why not a trapezoid over thresholds: the rank form (Mann-Whitney U divided by the number of
positive-negative pairs) is exact, handles ties by giving half credit, and needs no binning.
A label with no positives or no negatives has no ROC curve: its AUROC is NaN, and reports
say so rather than print a number.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    """AUROC of ``scores`` (higher = more likely positive) against boolean ``truth``."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(truth).astype(bool).ravel()
    if scores.shape != truth.shape:
        raise ValueError(f"scores {scores.shape} and truth {truth.shape} differ in length")
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = rankdata(scores)  # average ranks for ties
    u = ranks[truth].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def auroc_per_label(scores: np.ndarray, truth: np.ndarray) -> list[float]:
    """One AUROC per column of ``[N, L]`` scores and truth."""
    scores = np.asarray(scores)
    truth = np.asarray(truth)
    if scores.ndim != 2 or scores.shape != truth.shape:
        raise ValueError(f"expected matching [N, L] arrays, got {scores.shape} and {truth.shape}")
    return [auroc(scores[:, j], truth[:, j]) for j in range(scores.shape[1])]


def mean_defined(values: list[float]) -> float:
    """Mean of the defined (non-NaN) values; NaN when none is defined."""
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: for each positive, the fraction of negatives it outranks;
    for each negative, the fraction of positives that outrank it (ties count half). Their
    means are the AUROC; their variances give its DeLong standard error. Sorting makes this
    O((m + n) log) instead of the m x n comparison table."""
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    below = np.searchsorted(neg_sorted, pos, side="left")
    tied = np.searchsorted(neg_sorted, pos, side="right") - below
    v10 = (below + 0.5 * tied) / neg.size
    at_or_below = np.searchsorted(pos_sorted, neg, side="right")
    tied = at_or_below - np.searchsorted(pos_sorted, neg, side="left")
    v01 = (pos.size - at_or_below + 0.5 * tied) / pos.size
    return v10, v01
