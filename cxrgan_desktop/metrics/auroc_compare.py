"""Uncertainty of AUROCs measured on one test set, and of the differences between models
tested on the same images.

Two routes, because they answer for different things: DeLong, DeLong & Clarke-Pearson (1988)
give one AUROC's standard error and compare two models' AUROC on one label, exactly the
correlated-ROC situation of models (or readers) scored on the same cases, with no resampling;
the bootstrap covers what DeLong cannot, the macro (mean over labels) AUROC, and resamples
*patients* rather than images when patient ids are given, because a patient's follow-up
images are not independent cases.

Both DeLong results come from one computation, :func:`delong_covariance`: the placements of
each score set and their covariance. A single AUROC's variance is its diagonal entry; a
paired difference's is ``var a + var b - 2 cov(a, b)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm

from cxrgan_desktop.metrics.auroc import (
    ArrayLike,
    as_scores_and_truth,
    auroc_per_label,
    mean_defined,
    placements,
)


def delong_covariance(score_sets: Sequence[ArrayLike], truth: Sequence[bool] | np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs ``[k]`` of ``k`` score sets for the same cases, and their DeLong covariance
    ``[k, k]``: the covariance of the positives' placements over m plus that of the
    negatives' over n. AUROCs are NaN where a class is missing (or a score is NaN); the
    covariance is NaN then too, and when a class has fewer than 2 cases (no sample variance).
    """
    sets = [as_scores_and_truth(s, truth) for s in score_sets]
    labels = sets[0][1] if sets else np.zeros(0, bool)
    k, m, n = len(sets), int(labels.sum()), int((~labels).sum())
    undefined = np.full(k, math.nan), np.full((k, k), math.nan)
    if m == 0 or n == 0 or any(np.isnan(values).any() for values, _ in sets):
        return undefined
    components = [placements(values[labels], values[~labels]) for values, _ in sets]
    v10 = np.stack([c[0] for c in components])  # [k, m]
    v01 = np.stack([c[1] for c in components])  # [k, n]
    aucs = v10.mean(axis=1)
    if m < 2 or n < 2:
        return aucs, undefined[1]
    covariance = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, covariance


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2))


@dataclass(frozen=True)
class DeLongResult:
    auc: float
    se: float
    low: float
    high: float


def delong(scores: ArrayLike, truth: Sequence[bool] | np.ndarray,
           level: float = 0.95) -> DeLongResult:
    """AUROC with the DeLong nonparametric standard error and a normal interval clipped to
    [0, 1]: it needs no distributional model of the scores (or a reader's ordinal ratings),
    unlike binormal fits, and is the single-reader building block MRMC methods generalise."""
    z = _z(level)
    values, labels = as_scores_and_truth(scores, truth)
    (auc,), covariance = delong_covariance([values], labels)
    auc = float(auc)
    if math.isnan(auc):
        return DeLongResult(math.nan, math.nan, math.nan, math.nan)
    if auc in (0.0, 1.0):
        return _separated(auc, min(int(labels.sum()), int((~labels).sum())), level)
    variance = float(covariance[0, 0])
    if math.isnan(variance):  # a class of one case
        return DeLongResult(auc, math.nan, math.nan, math.nan)
    se = math.sqrt(variance)
    return DeLongResult(auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se))


def _separated(auc: float, pairs: int, level: float) -> DeLongResult:
    """Complete separation: DeLong's variance is 0, and "1.000-1.000" would claim certainty.
    Pair each case of the smaller class with its own case of the other: those ``pairs`` pairs
    share no case, so under a true AUC of theta each is ordered correctly independently with
    probability theta, and all are with probability theta ** pairs. The exact
    (Clopper-Pearson) interval for ``pairs`` of ``pairs`` correct bounds theta, and is valid
    (conservative) because the other pairs only add information."""
    ci = binomtest(pairs if auc == 1.0 else 0, pairs).proportion_ci(level, method="exact")
    return DeLongResult(auc, 0.0, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class PairedDeLong:
    auc_a: float
    auc_b: float
    difference: float  # b - a
    se: float
    low: float
    high: float
    p_value: float  # two-sided, H0: equal AUROC


def delong_paired(scores_a: ArrayLike, scores_b: ArrayLike, truth: Sequence[bool] | np.ndarray,
                  level: float = 0.95) -> PairedDeLong:
    """Compare two models' scores for the same cases against one boolean truth."""
    z = _z(level)
    (auc_a, auc_b), covariance = delong_covariance([scores_a, scores_b], truth)
    if math.isnan(auc_a) or math.isnan(auc_b):
        return PairedDeLong(float(auc_a), float(auc_b), *(math.nan,) * 5)
    auc_a, auc_b = float(auc_a), float(auc_b)
    difference = auc_b - auc_a
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    if math.isnan(variance):  # a class of one case
        return PairedDeLong(auc_a, auc_b, difference, *(math.nan,) * 4)
    if variance <= 0:  # identical rankings: no difference and no spread
        p = 1.0 if difference == 0 else 0.0
        return PairedDeLong(auc_a, auc_b, difference, 0.0, difference, difference, p)
    se = math.sqrt(variance)
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
