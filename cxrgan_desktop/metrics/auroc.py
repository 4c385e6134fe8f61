"""Area under the ROC curve, exact, from placements: the one AUROC every part of the app uses
(classifier validation, train-on-synthetic experiments, reader studies).

Why not a trapezoid over thresholds: the Mann-Whitney form (the chance a positive outscores a
negative, ties counted half) is exact, handles the ties of ordinal ratings, and needs no
binning. It is computed from DeLong's placement values, so an AUROC and its DeLong standard
error (``metrics.auroc_compare``) come from one computation and always agree. A label with no
positives or no negatives has no ROC curve: its AUROC is NaN, and reports say so rather than
print a number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def as_scores_and_truth(scores: ArrayLike, truth: Sequence[bool] | np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``scores`` as float64 and ``truth`` as bool, both flat and of one length. Refuses a
    truth that is not boolean or 0/1: strings such as "real" are truthy, so a wrong column
    passed by mistake must fail rather than silently make every case positive."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(truth).ravel()
    if values.shape != labels.shape:
        raise ValueError(f"scores {values.shape} and truth {labels.shape} differ in length")
    if labels.dtype != bool:
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise ValueError("truth must be boolean (or 0/1)")
        labels = labels.astype(bool)
    return values, labels


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


def auroc(scores: ArrayLike, truth: Sequence[bool] | np.ndarray) -> float:
    """AUROC of ``scores`` (higher = more likely positive) against boolean ``truth``.

    NaN when a class is missing, and NaN when a score is NaN: such a score has no rank, and a
    network whose weights diverged should read "n/a" for that epoch (training then keeps an
    earlier one) rather than stop the run."""
    values, labels = as_scores_and_truth(scores, truth)
    if np.isnan(values).any() or labels.all() or not labels.any():
        return math.nan
    v10, _ = placements(values[labels], values[~labels])
    return float(v10.mean())


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
