"""The train-on-synthetic, test-on-real figures: per-label AUROC of each arm with its
interval, and the learning curve of the scarce-data arms."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cxrgan_desktop.engine.tstr.results import (
    Interval,
    label_intervals,
    learning_curve,
    main_arms,
)
from cxrgan_desktop.figures.paper import legend, paper_figure, series_colour, write_figures

CHANCE = 0.5
CHANCE_GREY = (120 / 255, 120 / 255, 120 / 255)
SERIES_COLOURS = {"real only": (0.0, 0.0, 0.0), "real + synthetic": (20 / 255, 90 / 255, 200 / 255),
                  "synthetic only": (40 / 255, 140 / 255, 40 / 255)}
SERIES_MARKERS = ("o", "s")
SERIES_NUDGE = 0.012  # the two learning curves sit this far apart so their intervals show
CROWDED_LABELS = 6  # more groups than this: tick labels are slanted so that they fit
PLOT_FILES = ("auroc.png", "auroc.pdf", "learning_curve.png", "learning_curve.pdf")


def _arrays(points: Sequence[Interval]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, low, high) as float arrays, NaN where a value is undefined."""
    as_float = [[math.nan if v is None else float(v) for v in p] for p in points]
    values = np.array(as_float, dtype=float).reshape(-1, 3)
    return values[:, 0], values[:, 1], values[:, 2]


def _y_floor(lows: list[np.ndarray]) -> float:
    """Just below the lowest interval, and never above chance, so chance is always shown."""
    every = np.concatenate(lows) if lows else np.array([])
    defined = every[np.isfinite(every)]
    return max(0.0, min(CHANCE, float(defined.min()) if defined.size else CHANCE) - 0.05)


def _set_y_range(axes, lows: list[np.ndarray]) -> None:
    floor = _y_floor(lows)
    pad = 0.02 * (1.0 - floor)
    axes.set_ylim(floor - pad, 1.0 + pad)


def auroc_figure(results: dict[str, Any]) -> Figure:
    """One group of bars per label (and the macro mean), one bar per main arm with its 95 %
    patient-bootstrap interval, drawn up from chance so that the eye compares the arms'
    differences; an undefined AUROC leaves its bar out."""
    figure, axes = paper_figure("AUROC on the real test set (95 % patient-bootstrap interval)",
                                "", "AUROC")
    arms = main_arms(results)
    labels = [e["label"] for e in next(iter(results["arms"].values()))["statistics"]
              ["labels"]] + ["macro"]
    width = 0.8 / max(len(arms), 1)
    lows = []
    for index, arm in enumerate(arms):
        estimate, low, high = _arrays(label_intervals(results, arm))
        x = np.arange(len(labels)) - 0.4 + width * (index + 0.5)
        shown = np.isfinite(estimate)
        axes.bar(x[shown], estimate[shown] - CHANCE, width=width * 0.9, bottom=CHANCE,
                 color=series_colour(index, len(arms)), edgecolor="black", linewidth=0.8,
                 label=arm, zorder=2)
        ok = shown & np.isfinite(low) & np.isfinite(high)
        axes.errorbar(x[ok], estimate[ok], yerr=[estimate[ok] - low[ok], high[ok] - estimate[ok]],
                      fmt="none", ecolor="black", elinewidth=1.2, capsize=3, capthick=1.2,
                      zorder=3)
        lows.append(low)
    axes.axhline(CHANCE, color=CHANCE_GREY, linewidth=1, zorder=1)
    slanted = len(labels) > CROWDED_LABELS
    axes.set_xticks(np.arange(len(labels)), labels, rotation=30 if slanted else 0,
                    ha="right" if slanted else "center")
    axes.grid(False, axis="x")
    axes.set_xlim(-0.6, len(labels) - 0.4)
    _set_y_range(axes, lows)
    if arms:
        legend(axes, "upper left")
    return figure


def learning_curve_figure(results: dict[str, Any]) -> Figure:
    """Macro AUROC as the real training data shrinks, without and with the fixed synthetic
    set, each point with its interval; the synthetic-only arm as a dashed reference level."""
    figure, axes = paper_figure("Does synthetic data help when real data is scarce?",
                                "Fraction of real training patients",
                                "Macro AUROC (95 % interval)")
    lows = []
    for index, (series, points) in enumerate(learning_curve(results).items()):
        fractions = np.array([f for f, _ in points]) + (index - 0.5) * SERIES_NUDGE
        estimate, low, high = _arrays([p for _, p in points])
        colour = SERIES_COLOURS[series]
        axes.plot(fractions, estimate, color=colour, linewidth=1.5,
                  marker=SERIES_MARKERS[index % 2], markersize=6, label=series, zorder=3)
        ok = np.isfinite(low) & np.isfinite(high) & np.isfinite(estimate)
        axes.errorbar(fractions[ok], estimate[ok],
                      yerr=[estimate[ok] - low[ok], high[ok] - estimate[ok]], fmt="none",
                      ecolor=colour, elinewidth=1.2, capsize=5, capthick=1.2, zorder=3)
        lows.append(low)
    synthetic = results["arms"].get("synthetic")
    if synthetic is not None and synthetic["statistics"]["macro_auroc"] is not None:
        level = float(synthetic["statistics"]["macro_auroc"])
        axes.plot([0, 1], [level, level], color=SERIES_COLOURS["synthetic only"], linewidth=1.5,
                  linestyle="--", label="synthetic only", zorder=1)
        lows.append(np.array([level]))
    axes.set_xlim(-0.02, 1.04)
    _set_y_range(axes, lows)
    if lows:
        legend(axes, "lower right")
    return figure


def tstr_figures(results: dict[str, Any]) -> dict[str, Figure]:
    """``{file stem: figure}``; the learning curve only when the experiment had scarce arms."""
    figures = {"auroc": auroc_figure(results)}
    if learning_curve(results):
        figures["learning_curve"] = learning_curve_figure(results)
    return figures


def write_tstr_figures(results: dict[str, Any], folder: str | os.PathLike[str]) -> list[Path]:
    """The figures as PNG and PDF in ``folder`` (those of PLOT_FILES the results have): for
    ``cxrgan tstr`` and the results window's export alike."""
    return write_figures(tstr_figures(results), folder)
