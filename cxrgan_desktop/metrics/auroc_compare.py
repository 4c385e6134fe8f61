"""Uncertainty of AUROCs measured on one test set, and of the differences between models
tested on the same images.

Two routes, because they answer for different things: the paired DeLong test (DeLong,
DeLong & Clarke-Pearson 1988) compares two models' AUROC on one label, exactly the
correlated-ROC situation of models scored on the same cases, with no resampling; the
bootstrap covers what DeLong cannot, the macro (mean over labels) AUROC, and resamples
*patients* rather than images when patient ids are given, because a patient's follow-up
images are not independent cases.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from cxrgan_desktop.metrics.auroc import auroc_per_label, mean_defined, placements


@dataclass(frozen=True)
class PairedDeLong:
    auc_a: float
    auc_b: float
    difference: float  # b - a
    se: float
    low: float
    high: float
    p_value: float  # two-sided, H0: equal AUROC


def delong_paired(scores_a: np.ndarray, scores_b: np.ndarray, truth: np.ndarray,
                  level: float = 0.95) -> PairedDeLong:
    """Compare two models' scores for the same cases against one boolean truth."""
    truth = np.asarray(truth).astype(bool).ravel()
    a, b = (np.asarray(s, dtype=np.float64).ravel() for s in (scores_a, scores_b))
    if a.shape != truth.shape or b.shape != truth.shape:
        raise ValueError("both score vectors must match the truth's length")
    m, n = int(truth.sum()), int((~truth).sum())
    if m == 0 or n == 0:
        return PairedDeLong(*(math.nan,) * 7)
    components = [placements(s[truth], s[~truth]) for s in (a, b)]
    auc_a, auc_b = (float(v10.mean()) for v10, _ in components)
    if m < 2 or n < 2:
        return PairedDeLong(auc_a, auc_b, auc_b - auc_a, *(math.nan,) * 4)
    s10 = np.cov(np.stack([components[0][0], components[1][0]]))  # 2 x 2 over positives
    s01 = np.cov(np.stack([components[0][1], components[1][1]]))  # 2 x 2 over negatives
    covariance = s10 / m + s01 / n
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    difference = auc_b - auc_a
    if variance <= 0:  # identical rankings: no difference and no spread
        p = 1.0 if difference == 0 else 0.0
        return PairedDeLong(auc_a, auc_b, difference, 0.0, difference, difference, p)
    se = math.sqrt(variance)
    z = float(norm.ppf(0.5 + level / 2))
    p = float(2 * norm.sf(abs(difference) / se))
    return PairedDeLong(auc_a, auc_b, difference, se, difference - z * se,
                        difference + z * se, p)


def resample_indices(n_cases: int, n_boot: int, seed: int,
                     groups: np.ndarray | None = None) -> list[np.ndarray]:
    """``n_boot`` resamples of case indices, drawing whole groups (patients) when given; the
    same list is applied to every model so that differences are paired."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return [rng.integers(0, n_cases, n_cases) for _ in range(n_boot)]
    groups = np.asarray(groups)
    if groups.shape != (n_cases,):
        raise ValueError("one group (patient) id per case is needed")
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    out = []
    for _ in range(n_boot):
        chosen = rng.integers(0, len(members), len(members))
        out.append(np.concatenate([members[k] for k in chosen]))
    return out


def bootstrap_aurocs(probabilities: np.ndarray, truth: np.ndarray,
                     resamples: list[np.ndarray]) -> np.ndarray:
    """``[n_boot, L]`` per-label AUROCs over the resamples (NaN where a resample lacks a
    class); the macro AUROC of a resample is the mean of its defined labels."""
    return np.array([auroc_per_label(probabilities[ix], truth[ix]) for ix in resamples])


def macro(per_label: np.ndarray) -> np.ndarray:
    """Mean over defined labels, per row of ``[n_boot, L]`` (or of one ``[L]`` vector)."""
    rows = np.atleast_2d(per_label)
    out = np.array([mean_defined(list(row)) for row in rows])
    return out if np.ndim(per_label) == 2 else out[0]


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(defined, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p for "no difference" from paired bootstrap differences: twice the smaller
    tail mass at zero (with the +1 correction, so it is never exactly 0)."""
    defined = differences[np.isfinite(differences)]
    if defined.size == 0:
        return math.nan
    below = (np.sum(defined <= 0) + 1) / (defined.size + 1)
    above = (np.sum(defined >= 0) + 1) / (defined.size + 1)
    return float(min(1.0, 2 * min(below, above)))
