"""The reader-study figures: ROC curves per reader, and accuracy per reader and pooled with
exact intervals."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from cxrgan_desktop.figures.paper import (
    GUIDE_GREY,
    legend,
    paper_figure,
    series_colour,
    write_figures,
)
from cxrgan_desktop.study.analysis import Analysis, reader_roc_curves
from cxrgan_desktop.study.results_table import ResultRow

PLOT_FILES = ("roc.png", "roc.pdf", "accuracy.png", "accuracy.pdf")
CHANCE_ACCURACY = 0.5
NAME_CHARACTERS = 14  # longer reader names are cut on the accuracy axis


def roc_figure(rows: list[ResultRow], analysis: Analysis) -> Figure:
    """Each reader's operating points (every rating as a threshold) joined into an ROC curve,
    named with the reader's AUC, over the chance diagonal; synthetic is the positive class."""
    figure, axes = paper_figure("ROC: detecting synthetic images",
                                "False positive rate (real called synthetic)",
                                "True positive rate (synthetic caught)")
    axes.plot([0, 1], [0, 1], color=GUIDE_GREY, linewidth=1, linestyle="--",
              label="_chance", zorder=1)
    curves = reader_roc_curves(rows)
    aucs = {s.reader: s.auc for s in analysis.readers}
    for index, (reader, (fpr, tpr)) in enumerate(curves.items()):
        auc = aucs.get(reader, math.nan)
        name = reader if not math.isfinite(auc) else f"{reader} (AUC {auc:.2f})"
        axes.plot(fpr, tpr, color=series_colour(index, len(curves)), linewidth=1.5,
                  marker="o", markersize=4.5, label=name, zorder=2)
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.set_aspect("equal")
    if curves:
        legend(axes, "lower right")  # where ROC curves rarely go
    return figure


def accuracy_figure(analysis: Analysis) -> Figure:
    """Accuracy per reader and pooled (black), with Clopper-Pearson 95 % intervals, over the
    50 % line a reader who guesses would sit on."""
    figure, axes = paper_figure("Accuracy (95 % exact interval)", "", "Accuracy")
    rows = [*analysis.readers, analysis.pooled]
    x = np.arange(len(rows), dtype=float)
    axes.axhline(CHANCE_ACCURACY, color=GUIDE_GREY, linewidth=1, linestyle="--", zorder=1)
    accuracy = np.array([r.accuracy for r in rows], dtype=float)
    low = np.array([r.accuracy_low for r in rows], dtype=float)
    high = np.array([r.accuracy_high for r in rows], dtype=float)
    ok = np.isfinite(accuracy) & np.isfinite(low) & np.isfinite(high)
    axes.errorbar(x[ok], accuracy[ok], yerr=[accuracy[ok] - low[ok], high[ok] - accuracy[ok]],
                  fmt="none", ecolor="black", elinewidth=1.5, capsize=14, capthick=1.5,
                  zorder=2)
    colours = [series_colour(i, len(analysis.readers)) for i in range(len(analysis.readers))]
    axes.scatter(x, accuracy, marker="s", s=64, c=[*colours, (0.0, 0.0, 0.0)],
                 edgecolors="black", linewidths=0.8, zorder=3)
    axes.set_xticks(x, [*(r.reader[:NAME_CHARACTERS] for r in analysis.readers), "pooled"])
    axes.grid(False, axis="x")
    axes.set_xlim(-0.6, len(rows) - 0.4)
    axes.set_ylim(-0.02, 1.02)
    return figure


def study_figures(rows: list[ResultRow], analysis: Analysis) -> dict[str, Figure]:
    """``{file stem: figure}``, as PLOT_FILES names them."""
    return {"roc": roc_figure(rows, analysis), "accuracy": accuracy_figure(analysis)}


def write_study_figures(rows: list[ResultRow], analysis: Analysis,
                        folder: str | os.PathLike[str]) -> list[Path]:
    """PLOT_FILES into ``folder``: for ``cxrgan study analyse --plots`` and the results
    window's export alike."""
    return write_figures(study_figures(rows, analysis), folder)
