"""The statistics only a real-vs-synthetic reader study reports: accuracy intervals and the
test against guessing, operating points of a reader's ratings, and agreement between readers.
The ROC AUC and its DeLong interval are the app's one implementation in ``metrics`` (shared
with the classifier experiments); the binomial test and the exact interval are scipy's, with
the edge cases (no trials) decided here. Each definition is pinned by the tests against
exact enumeration, R's binom.test, scikit-learn and statsmodels, which the app does not carry.

Conventions: the *positive* class is ``synthetic`` (a reader who spots the fakes scores high);
ratings are ordinal, so ties are common and are always counted half.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
from scipy.stats import binomtest

from cxrgan_desktop.metrics.auroc import as_scores_and_truth


def mean_or_nan(values: Iterable[float]) -> float:
    """Mean that reports "no data" as NaN instead of warning, for tables with empty cells."""
    array = np.asarray(list(values), dtype=float)
    return float(array.mean()) if array.size else math.nan


# --- proportions --------------------------------------------------------------------------------

def _check_counts(k: int, n: int) -> None:
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


def binomial_test_two_sided(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided p-value of k successes in n trials (scipy's binomtest, which sums the
    outcomes no more likely than the one observed, as R's binom.test does, because doubling
    the one-sided p-value is wrong whenever p != 0.5). No trials are no evidence: 1."""
    _check_counts(k, n)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    return 1.0 if n == 0 else float(binomtest(k, n, p).pvalue)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a proportion: conservative, but it never claims
    more certainty than the data give, which matters for accuracies near 0.5 or near 1 with
    the small case counts of a reader study. At k = 0 (k = n) the bound at 0 (1) is fixed
    and the other is the alpha/2 quantile, as scipy's exact interval has it. No trials leave
    the proportion unknown: [0, 1]."""
    _check_counts(k, n)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n == 0:
        return 0.0, 1.0
    interval = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(interval.low), float(interval.high)


# --- ROC ----------------------------------------------------------------------------------------

def _split_classes(scores: Sequence[float] | np.ndarray,
                   positive: Sequence[bool] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive scores, negative scores) of finite ratings: a reader's ratings are integers,
    so anything else is a corrupt table, not a case to score."""
    values, labels = as_scores_and_truth(scores, positive)
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite")
    return values[labels], values[~labels]


def roc_points(scores: Sequence[float] | np.ndarray,
               positive: Sequence[bool] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of calling "synthetic" at score >= t for every distinct score t, from (0, 0)
    to (1, 1): the reader's operating points to plot. A missing class gives NaN for its rate
    (as scikit-learn does) rather than an error, so a per-reader plot loop need not special-case
    it."""
    pos, neg = _split_classes(scores, positive)
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    tpr = _rate_at_or_above(pos, thresholds)
    fpr = _rate_at_or_above(neg, thresholds)
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], tpr])


def _rate_at_or_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return np.full(thresholds.size, math.nan)
    count = values.size - np.searchsorted(np.sort(values), thresholds, side="left")
    return count / values.size


# --- agreement ----------------------------------------------------------------------------------

def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Unweighted Cohen's kappa: how much two readers agree beyond what their own answer
    frequencies would produce by chance. NaN when chance agreement is already total (both
    gave one and the same answer throughout), where kappa is undefined."""
    first, second = list(a), list(b)
    if len(first) != len(second):
        raise ValueError(f"the raters labelled different numbers of items: {len(first)} and "
                         f"{len(second)}")
    n = len(first)
    if n == 0:
        return math.nan
    observed = sum(x == y for x, y in zip(first, second, strict=True)) / n
    counts_a, counts_b = Counter(first), Counter(second)
    expected = sum(counts_a[label] * counts_b[label] for label in counts_a) / (n * n)
    if expected == 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa for many readers: agreement beyond chance when every case was rated by the
    same number of readers. ``table[i, j]`` is how many readers put case i in category j. NaN
    when every rating fell in one category (chance agreement is total)."""
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[0] == 0 or counts.shape[1] == 0:
        raise ValueError(f"table must be a non-empty subjects x categories array, got shape "
                         f"{counts.shape}")
    if (counts < 0).any() or not np.array_equal(counts, np.round(counts)):
        raise ValueError("table must hold non-negative whole counts")
    raters = counts.sum(axis=1)
    if not np.all(raters == raters[0]):
        raise ValueError("every subject must be rated by the same number of raters, got "
                         f"{sorted(set(raters.astype(int).tolist()))}")
    n = raters[0]
    if n < 2:
        raise ValueError(f"agreement needs at least 2 raters per subject, got {int(n)}")
    per_subject = ((counts * counts).sum(axis=1) - n) / (n * (n - 1))
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares * shares).sum())
    if expected == 1.0:
        return math.nan
    return (float(per_subject.mean()) - expected) / (1.0 - expected)
