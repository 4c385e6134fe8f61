"""The statistics of a reader study, from the long results table.

Per reader and pooled: accuracy with an exact (Clopper-Pearson) 95 % interval and an exact
two-sided binomial test against guessing (0.5); sensitivity and specificity for detecting
synthetic images; ROC AUC of the ratings with a DeLong 95 % interval; mean reading time.
Across readers: Fleiss' kappa on the forced answers (cases every reader answered) and
Cohen's kappa for each pair. With the key's LCO findings, a per-finding breakdown of how
often synthetic images with that finding were caught. The pooled row treats reader-case
pairs as independent, which they are not; the MRMC exports are the route to inference that
generalises to new readers and cases.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cxrgan_desktop.metrics.auroc_compare import delong
from cxrgan_desktop.study import stats
from cxrgan_desktop.study.results_table import ResultRow

POOLED = "all readers (pooled)"


@dataclass
class ReaderStats:
    reader: str
    n: int
    correct: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    p_value: float  # exact binomial, two-sided, against 0.5
    sensitivity: float  # synthetic images called synthetic
    specificity: float  # real images called real
    auc: float
    auc_low: float
    auc_high: float
    mean_seconds: float | None


@dataclass
class LabelStats:
    label: str
    cases: int  # synthetic cases with this finding
    readings: int  # readings of those cases, over all readers
    detected: int  # readings that called them synthetic
    sensitivity: float
    low: float
    high: float


@dataclass
class Analysis:
    readers: list[ReaderStats]
    pooled: ReaderStats
    fleiss_kappa: float | None
    fleiss_cases: int
    cohen_kappa: dict[str, float] = field(default_factory=dict)
    per_label: list[LabelStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))


def _finite(obj: Any) -> Any:
    """JSON has no NaN: undefined statistics become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _rate(hits: int, total: int) -> float:
    return hits / total if total else math.nan


def reader_stats(reader: str, rows: list[ResultRow]) -> ReaderStats:
    n = len(rows)
    correct = sum(r.correct for r in rows)
    low, high = stats.clopper_pearson(correct, n)
    synthetic = [r for r in rows if r.is_synthetic]
    real = [r for r in rows if not r.is_synthetic]
    ratings = np.array([r.rating for r in rows], dtype=float)
    positive = np.array([r.is_synthetic for r in rows])
    roc = delong(ratings, positive)
    times = [r.seconds for r in rows if r.seconds is not None]
    return ReaderStats(
        reader=reader, n=n, correct=correct, accuracy=_rate(correct, n), accuracy_low=low,
        accuracy_high=high, p_value=stats.binomial_test_two_sided(correct, n),
        sensitivity=_rate(sum(r.answer == "synthetic" for r in synthetic), len(synthetic)),
        specificity=_rate(sum(r.answer == "real" for r in real), len(real)),
        auc=roc.auc, auc_low=roc.low, auc_high=roc.high,
        mean_seconds=float(np.mean(times)) if times else None)


def _agreement(rows: list[ResultRow]) -> tuple[float | None, int, dict[str, float]]:
    by_reader: dict[str, dict[str, str]] = defaultdict(dict)
    for row in rows:
        by_reader[row.reader][row.case] = row.answer
    readers = sorted(by_reader)
    if len(readers) < 2:
        return None, 0, {}
    common = sorted(set.intersection(*(set(answers) for answers in by_reader.values())))
    table = np.array([[sum(by_reader[r][case] == cls for r in readers)
                       for cls in ("real", "synthetic")] for case in common])
    fleiss = stats.fleiss_kappa(table) if len(common) else None
    pairs = {}
    for a, b in itertools.combinations(readers, 2):
        shared = sorted(set(by_reader[a]) & set(by_reader[b]))
        if shared:
            pairs[f"{a} | {b}"] = stats.cohen_kappa([by_reader[a][c] for c in shared],
                                                    [by_reader[b][c] for c in shared])
    return fleiss, len(common), pairs


def _per_label(rows: list[ResultRow], labels: dict[str, list[str]]) -> list[LabelStats]:
    found: dict[str, list[ResultRow]] = defaultdict(list)
    for row in rows:
        if row.is_synthetic:
            for label in labels.get(row.case, []):
                found[label].append(row)
    out = []
    for label in sorted(found):
        group = found[label]
        detected = sum(r.answer == "synthetic" for r in group)
        low, high = stats.clopper_pearson(detected, len(group))
        out.append(LabelStats(label, len({r.case for r in group}), len(group), detected,
                              _rate(detected, len(group)), low, high))
    return out


def analyse(rows: list[ResultRow], labels: dict[str, list[str]] | None = None) -> Analysis:
    """``labels``: case -> the LCO findings of synthetic cases (from the key), if any."""
    by_reader: dict[str, list[ResultRow]] = defaultdict(list)
    for row in rows:
        by_reader[row.reader].append(row)
    fleiss, fleiss_cases, pairs = _agreement(rows)
    return Analysis(
        readers=[reader_stats(r, by_reader[r]) for r in sorted(by_reader)],
        pooled=reader_stats(POOLED, rows), fleiss_kappa=fleiss, fleiss_cases=fleiss_cases,
        cohen_kappa=pairs, per_label=_per_label(rows, labels or {}))


def reader_roc_curves(rows: list[ResultRow]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """reader -> (false positive rate, true positive rate) of their ratings, for plotting;
    "synthetic" is the positive class, as for the AUC."""
    by_reader: dict[str, list[ResultRow]] = defaultdict(list)
    for row in rows:
        by_reader[row.reader].append(row)
    return {reader: stats.roc_points([r.rating for r in group],
                                     [r.is_synthetic for r in group])
            for reader, group in sorted(by_reader.items())}


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.1f} %"


def report_text(analysis: Analysis) -> str:
    """The human-readable report (also shown in the window)."""
    lines = ["Reader study: real vs synthetic", ""]
    header = (f"{'reader':<24} {'n':>5} {'accuracy (95% CI)':>26} {'p':>9} {'sens':>8} "
              f"{'spec':>8} {'AUC (95% CI)':>22} {'s/case':>7}")
    lines += [header, "-" * len(header)]
    for s in [*analysis.readers, analysis.pooled]:
        auc = ("n/a" if not math.isfinite(s.auc) else
               f"{s.auc:.3f} ({s.auc_low:.3f}-{s.auc_high:.3f})")
        time = "" if s.mean_seconds is None else f"{s.mean_seconds:.1f}"
        accuracy = f"{_pct(s.accuracy)} ({_pct(s.accuracy_low)}-{_pct(s.accuracy_high)})"
        lines.append(f"{s.reader[:24]:<24} {s.n:>5} {accuracy:>26}"
                     f" {s.p_value:>9.3g} {_pct(s.sensitivity):>8} {_pct(s.specificity):>8} "
                     f"{auc:>22} {time:>7}")
    lines.append("")
    lines.append("accuracy: exact Clopper-Pearson interval; p: exact two-sided binomial test "
                 "against 0.5; sens/spec: for detecting synthetic images; AUC from the "
                 "ratings with a DeLong interval (an exact one when the classes separate "
                 "completely, where DeLong's is 0 wide). The pooled row treats reader-case "
                 "pairs as independent: use the MRMC exports for inference across readers.")
    if analysis.fleiss_kappa is not None:
        lines += ["", f"Fleiss' kappa (answers, {analysis.fleiss_cases} cases read by all): "
                      f"{analysis.fleiss_kappa:.3f}"]
        lines += [f"Cohen's kappa {pair}: {value:.3f}"
                  for pair, value in analysis.cohen_kappa.items()]
    if analysis.per_label:
        lines += ["", "Synthetic images caught, by LCO finding:"]
        lines += [f"  {s.label:<20} {s.cases} cases, {s.detected}/{s.readings} readings "
                  f"{_pct(s.sensitivity)} ({_pct(s.low)}-{_pct(s.high)})"
                  for s in analysis.per_label]
    return "\n".join(lines) + "\n"
