"""Reader-study statistics against exact enumeration, R's binom.test, scikit-learn and
statsmodels, and the MRMC exports read back. The reference libraries are test-only
dependencies (the ``test`` extra); they are imported inside the tests that use them."""

from __future__ import annotations

import csv
import importlib
import math
from fractions import Fraction

import numpy as np
import pytest

from cxrgan_desktop.study.mrmc_export import write_imrmc, write_mrmcaov_csv
from cxrgan_desktop.study.results_table import ResultRow
from cxrgan_desktop.study.stats import (
    binomial_test_two_sided,
    clopper_pearson,
    cohen_kappa,
    fleiss_kappa,
    mean_or_nan,
    roc_points,
)
from tests.test_auroc import random_tables as _random_tables

# --- binomial test and Clopper-Pearson ------------------------------------------------------------

def _exact_two_sided(k: int, n: int, p: Fraction) -> float:
    """The two-sided binomial p-value from its definition, in exact rational arithmetic: the
    total probability of the outcomes no more likely than k. Every P(X = x) shares the
    denominator d ** n (p = a / d), so the integer numerators are compared and summed."""
    a, d = p.numerator, p.denominator
    weights = [math.comb(n, x) * a**x * (d - a) ** (n - x) for x in range(n + 1)]
    return float(Fraction(sum(w for w in weights if w <= weights[k]), d**n))


def test_binomial_test_matches_exact_enumeration():
    rng = np.random.default_rng(0)
    probabilities = (Fraction(1, 2), Fraction(3, 10), Fraction(1, 3), Fraction(9, 10))
    cases = [(k, n, p) for n in (1, 2, 3, 10, 25) for k in range(n + 1) for p in probabilities]
    for _ in range(400):
        n = int(rng.integers(1, 400))
        p = Fraction(1, 2) if rng.random() < 0.5 else Fraction(int(rng.integers(1, 1000)), 1000)
        cases.append((int(rng.integers(0, n + 1)), n, p))
    for k, n, p in cases:
        assert binomial_test_two_sided(k, n, float(p)) == pytest.approx(
            _exact_two_sided(k, n, p), rel=1e-9, abs=1e-14), (k, n, p)
    # at p = 1/3 outcomes 0 and 1 of 2 are equally likely (4/9 each): both count, as in R
    assert binomial_test_two_sided(1, 2, 1 / 3) == pytest.approx(1.0)
    assert binomial_test_two_sided(1400, 2000) == pytest.approx(
        _exact_two_sided(1400, 2000, Fraction(1, 2)), rel=1e-8)  # far in the tail


def test_binomial_test_against_r_and_edges():
    # R's documented binom.test example (Mendel's peas, ?binom.test in R's stats package):
    # binom.test(c(682, 243), p = 3/4) prints p-value = 0.3825
    assert binomial_test_two_sided(682, 925, 0.75) == pytest.approx(0.3825, abs=5e-5)
    assert binomial_test_two_sided(0, 0) == 1.0
    assert binomial_test_two_sided(5, 10) == 1.0
    # a reader who gets all 40 right: 2 * 0.5**40
    assert binomial_test_two_sided(40, 40) == pytest.approx(2 * 0.5**40, rel=1e-12)
    assert binomial_test_two_sided(0, 40) == pytest.approx(2 * 0.5**40, rel=1e-12)
    assert binomial_test_two_sided(3, 5, 0.0) == 0.0
    assert binomial_test_two_sided(0, 5, 0.0) == 1.0
    assert binomial_test_two_sided(5, 5, 1.0) == 1.0
    for bad in ((-1, 5, 0.5), (6, 5, 0.5), (2, 5, 1.5), (1, 0, 0.5)):
        with pytest.raises(ValueError):
            binomial_test_two_sided(*bad)


def _binomial_tail(k: int, n: int, p: float, upper: bool) -> float:
    """P(X >= k) (upper) or P(X <= k), summed term by term from the definition."""
    outcomes = range(k, n + 1) if upper else range(k + 1)
    return sum(math.comb(n, x) * p**x * (1 - p) ** (n - x) for x in outcomes)


def test_clopper_pearson_matches_statsmodels_and_its_definition():
    proportion_confint = importlib.import_module("statsmodels.stats.proportion").proportion_confint
    rng = np.random.default_rng(1)
    for _ in range(150):
        n = int(rng.integers(1, 300))
        k = int(rng.choice([0, n, rng.integers(0, n + 1)]))
        level = float(rng.choice([0.95, 0.9, 0.99, 0.5]))
        low, high = clopper_pearson(k, n, level)
        sm_low, sm_high = proportion_confint(k, n, alpha=1 - level, method="beta")
        assert (low, high) == pytest.approx((sm_low, sm_high), rel=1e-9, abs=1e-12)
        assert 0.0 <= low <= k / n <= high <= 1.0
        if n <= 60:  # the defining tail equations, alpha / 2 on each side
            tail = (1 - level) / 2
            if k > 0:
                assert _binomial_tail(k, n, low, upper=True) == pytest.approx(tail, rel=1e-8)
            if k < n:
                assert _binomial_tail(k, n, high, upper=False) == pytest.approx(tail, rel=1e-8)


def test_clopper_pearson_against_r_and_edges():
    # R: binom.test(c(682, 243), p = 3/4) prints the 95 percent interval 0.7076683 0.7654066
    assert clopper_pearson(682, 925) == pytest.approx((0.7076683, 0.7654066), abs=5e-8)
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    # all (none) correct: one-sided at alpha / 2, the other bound fixed at 1 (0)
    low, high = clopper_pearson(20, 20)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 20), rel=1e-12)
    low, high = clopper_pearson(0, 20)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 20), rel=1e-12)
    low, high = clopper_pearson(10, 10, level=0.8)
    assert high == 1.0 and low == pytest.approx(0.1 ** (1 / 10), rel=1e-12)
    with pytest.raises(ValueError):
        clopper_pearson(3, 2)
    with pytest.raises(ValueError):
        clopper_pearson(1, 2, level=1.0)


# --- ROC ------------------------------------------------------------------------------------------

def test_roc_points_match_sklearn():
    metrics = importlib.import_module("sklearn.metrics")
    for scores, positive in _random_tables(seed=2, count=150):
        fpr, tpr = roc_points(scores, positive)
        ref_fpr, ref_tpr, _ = metrics.roc_curve(positive, scores, drop_intermediate=False)
        np.testing.assert_allclose(fpr, ref_fpr, rtol=0, atol=1e-12)
        np.testing.assert_allclose(tpr, ref_tpr, rtol=0, atol=1e-12)
        assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
        assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)


def test_roc_points_edges():
    fpr, tpr = roc_points([1, 2, 3], [True, True, True])
    assert np.isnan(fpr[1:]).all() and tpr[-1] == 1.0
    fpr, tpr = roc_points([1, 2, 2, 5], [0, 1, 0, 1])
    np.testing.assert_array_equal(fpr, [0, 0, 0.5, 1])
    np.testing.assert_array_equal(tpr, [0, 0.5, 1, 1])
    with pytest.raises(ValueError):
        roc_points([1, 2], [True])
    with pytest.raises(ValueError):
        roc_points([1, 2], ["real", "synthetic"])
    with pytest.raises(ValueError):
        roc_points([1, float("nan")], [True, False])


# --- agreement ------------------------------------------------------------------------------------

def test_cohen_kappa_matches_sklearn():
    metrics = importlib.import_module("sklearn.metrics")
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(2, 80))
        categories = int(rng.integers(2, 6))
        a = rng.integers(0, categories, n)
        agree = rng.random(n) < rng.random()
        b = np.where(agree, a, rng.integers(0, categories, n))
        expected = metrics.cohen_kappa_score(a, b)
        if np.isnan(expected):
            assert math.isnan(cohen_kappa(a.tolist(), b.tolist()))
        else:
            assert cohen_kappa(a.tolist(), b.tolist()) == pytest.approx(expected, abs=1e-12)


def test_cohen_kappa_hashable_labels_and_edges():
    a = ["real", "synthetic", "synthetic", "real", "real"]
    b = ["real", "synthetic", "real", "real", "synthetic"]
    numeric = cohen_kappa([0, 1, 1, 0, 0], [0, 1, 0, 0, 1])
    assert cohen_kappa(a, b) == pytest.approx(numeric)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa([("x", 1), ("y", 2)], [("x", 1), ("y", 2)]) == 1.0
    assert math.isnan(cohen_kappa(["real"] * 4, ["real"] * 4))
    assert math.isnan(cohen_kappa([], []))
    assert cohen_kappa(["a", "b"], ["b", "a"]) == -1.0
    with pytest.raises(ValueError):
        cohen_kappa([1, 2], [1])


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # statsmodels' 0/0
def test_fleiss_kappa_matches_statsmodels():
    inter_rater = importlib.import_module("statsmodels.stats.inter_rater")
    rng = np.random.default_rng(8)
    for _ in range(300):
        subjects, categories = int(rng.integers(1, 60)), int(rng.integers(2, 6))
        raters = int(rng.integers(2, 12))
        shares = rng.dirichlet(np.ones(categories) * rng.uniform(0.2, 5))
        table = np.stack([rng.multinomial(raters, shares) for _ in range(subjects)])
        expected = inter_rater.fleiss_kappa(table, method="fleiss")
        if np.isnan(expected):
            assert math.isnan(fleiss_kappa(table))
        else:
            assert fleiss_kappa(table) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_fleiss_kappa_known_value_and_edges():
    # Fleiss (1971) worked example as reproduced on Wikipedia: 10 subjects, 14 raters
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
                      [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
                      [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-5)
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == 1.0
    assert math.isnan(fleiss_kappa(np.array([[3, 0], [3, 0]])))
    for bad in (np.array([[3, 0], [1, 1]]), np.array([[1, 0], [0, 1]]), np.zeros((0, 2)),
                np.array([3, 0]), np.array([[2.5, 0.5]]), np.array([[-1, 3]])):
        with pytest.raises(ValueError):
            fleiss_kappa(bad)


def test_mean_or_nan():
    assert mean_or_nan([1.0, 2.0, 4.0]) == pytest.approx(7 / 3)
    assert math.isnan(mean_or_nan([]))
    assert mean_or_nan(x for x in (3, 5)) == 4.0


# --- MRMC exports ---------------------------------------------------------------------------------

def _study_rows(readers: list[str], n_real: int, n_synthetic: int, seed: int = 9
                ) -> list[ResultRow]:
    rng = np.random.default_rng(seed)
    cases = [(f"r{i:03d}", "real") for i in range(n_real)]
    cases += [(f"s{i:03d}", "synthetic") for i in range(n_synthetic)]
    rows = []
    for reader in readers:
        for case, truth in cases:
            rating = int(rng.integers(1, 6))
            answer = "synthetic" if rating >= 4 else "real"
            rows.append(ResultRow(reader, case, truth, rating, answer, 1.5))
    return rows


def _read_imrmc(path) -> tuple[list[str], list[list[str]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("BEGIN DATA:")
    return lines[:start], [line.split(",") for line in lines[start + 1:] if line]


def test_imrmc_file_structure(tmp_path):
    rows = _study_rows(["alice", "bob", "carol"], n_real=7, n_synthetic=5)
    path = tmp_path / "study.imrmc"
    write_imrmc(rows, path)
    header, data = _read_imrmc(path)
    counts = {line.split(":")[0]: int(line.split(":")[1]) for line in header
              if line[:3] in ("NR:", "N0:", "N1:", "NM:")}
    assert counts == {"NR": 3, "N0": 7, "N1": 5, "NM": 1}
    # iMRMC looks for these keys anywhere in a header line: the free text must not hold them
    for line in header:
        if line[:3] not in ("NR:", "N0:", "N1:", "NM:"):
            assert not any(key in line.upper() for key in ("NR:", "N0:", "N1:", "NM:")), line
            assert not line.upper().startswith("BEGIN DATA:")
    assert all(len(fields) == 4 for fields in data)
    truth_rows = [fields for fields in data if fields[0] == "-1"]
    score_rows = [fields for fields in data if fields[0] != "-1"]
    assert data[: len(truth_rows)] == truth_rows  # truth first, then scores
    truth = {case: code for _, case, _, code in truth_rows}
    assert len(truth_rows) == len(truth) == 12
    assert all(modality == "0" for _, _, modality, _ in truth_rows)
    assert {case for case, code in truth.items() if code == "1"} == {f"s{i:03d}" for i in range(5)}
    assert {case for case, code in truth.items() if code == "0"} == {f"r{i:03d}" for i in range(7)}
    assert len(score_rows) == 3 * 12
    assert {(r, c) for r, c, _, _ in score_rows} == {(row.reader, row.case) for row in rows}
    assert {m for _, _, m, _ in score_rows} == {"PGGAN"}
    ratings = {(row.reader, row.case): row.rating for row in rows}
    assert all(int(score) == ratings[(r, c)] for r, c, _, score in score_rows)


def test_imrmc_ids_are_made_safe(tmp_path):
    rows = _study_rows(["Dr A. Smith", "Dr, B Jones"], n_real=2, n_synthetic=2)
    path = tmp_path / "ids.imrmc"
    write_imrmc(rows, path, modality="PG GAN")
    _, data = _read_imrmc(path)
    assert all(len(fields) == 4 for fields in data)
    assert {r for r, *_ in data if r != "-1"} == {"Dr_A._Smith", "Dr_B_Jones"}
    assert {m for r, _, m, _ in data if r != "-1"} == {"PG_GAN"}
    clash = _study_rows(["Dr Smith", "Dr  Smith"], 2, 2)
    with pytest.raises(ValueError, match="both become"):
        write_imrmc(clash, tmp_path / "clash.imrmc")
    with pytest.raises(ValueError, match="truth row"):
        write_imrmc(_study_rows(["truth"], 2, 2), tmp_path / "truth.imrmc")


def test_mrmcaov_csv_structure(tmp_path):
    rows = _study_rows(["alice", "bob"], n_real=4, n_synthetic=6)
    path = tmp_path / "study.csv"
    write_mrmcaov_csv(rows, path, modality="StyleGAN")
    with path.open(newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == ["reader", "treatment", "case", "truth", "rating"]
    assert len(table) == len(rows) == 2 * 10
    assert {(t["reader"], t["case"]) for t in table} == {(r.reader, r.case) for r in rows}
    assert {t["treatment"] for t in table} == {"StyleGAN"}
    for entry, row in zip(table, rows, strict=True):
        assert entry["truth"] == ("1" if row.truth == "synthetic" else "0")
        assert int(entry["rating"]) == row.rating
    assert sum(t["truth"] == "1" for t in table) == 2 * 6


def test_exports_refuse_inconsistent_tables(tmp_path):
    rows = _study_rows(["alice"], 2, 2)
    duplicate = [*rows, rows[0]]
    flipped = [*rows, ResultRow("bob", rows[0].case, "synthetic", 3, "real")]
    for writer in (write_imrmc, write_mrmcaov_csv):
        with pytest.raises(ValueError, match="twice"):
            writer(duplicate, tmp_path / "out")
        with pytest.raises(ValueError, match="both real and synthetic"):
            writer(flipped, tmp_path / "out")
        with pytest.raises(ValueError, match="no results"):
            writer([], tmp_path / "out")
    assert not (tmp_path / "out").exists()
