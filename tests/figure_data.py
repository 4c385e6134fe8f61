"""Small, seeded inputs for the figure tests: reader-study answers and a TSTR results table
of the shape ``cxrgan tstr`` writes (results.json)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrgan_desktop.study.results_table import ResultRow

READERS = ("reader-a", "reader-b", "a-reader-with-a-long-name")
LABELS = ("Effusion", "Mass", "Nodule")


def study_rows(cases: int = 30, seed: int = 7) -> list[ResultRow]:
    """Three readers rating the same cases 1-6, better the later the reader; ties, and
    ratings some readers never use, on purpose."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, reader in enumerate(READERS):
        for i in range(cases):
            truth = "synthetic" if i % 3 else "real"
            signal = 0.6 * k * (truth == "synthetic")
            rating = int(np.clip(np.round(3.5 + 1.3 * (rng.normal() + signal)), 1, 6))
            rows.append(ResultRow(reader, f"case{i:02d}", truth, rating,
                                  "synthetic" if rating > 3 else "real",
                                  round(float(rng.uniform(2, 9)), 1)))
    return rows


def _arm(kind: str, real: int, synthetic: int, fraction: float, macro: float,
         labels: tuple[float | None, ...]) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "macro_auroc": macro, "macro_low": macro - 0.08, "macro_high": macro + 0.05,
        "labels": [{"label": name, "auroc": value,
                    "low": None if value is None else value - 0.11,
                    "high": None if value is None else min(1.0, value + 0.07),
                    "positives": 5}
                   for name, value in zip(LABELS, labels, strict=True)]}
    if kind != "real":
        stats["macro_vs_real"] = {"difference": macro - 0.75, "low": -0.2, "high": 0.1,
                                  "p_bootstrap": 0.3}
    return {"kind": kind, "statistics": stats,
            "composition": {"real_images": real, "synthetic_images": synthetic,
                            "real_fraction": fraction}}


def tstr_results(scarce: bool = True) -> dict[str, Any]:
    """Real, synthetic and mixed arms (the synthetic arm's Nodule AUROC undefined), and with
    ``scarce`` two scarce fractions with and without the synthetic set."""
    arms = {"real": _arm("real", 100, 0, 1.0, 0.75, (0.71, 0.83, 0.71)),
            "synthetic": _arm("synthetic", 0, 80, 1.0, 0.61, (0.58, 0.64, None)),
            "mixed": _arm("mixed", 100, 80, 1.0, 0.78, (0.74, 0.86, 0.74))}
    if scarce:
        arms |= {"real-20%": _arm("scarce", 20, 0, 0.2, 0.6, (0.55, 0.7, 0.55)),
                 "real-20%+synthetic": _arm("scarce", 20, 80, 0.2, 0.69, (0.66, 0.75, 0.66)),
                 "real-50%": _arm("scarce", 50, 0, 0.5, 0.68, (0.64, 0.77, 0.63)),
                 "real-50%+synthetic": _arm("scarce", 50, 80, 0.5, 0.72, (0.7, 0.8, 0.66))}
    return {"bootstrap": 100,
            "split": {"train_images": 120, "test_images": 30, "train_patients": 80,
                      "test_patients": 20, "shared_patients": 0},
            "test": {"images": 30, "patients": 20, "positives": dict.fromkeys(LABELS, 5)},
            "arms": arms, "warnings": []}
