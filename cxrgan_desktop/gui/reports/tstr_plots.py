"""The train-on-synthetic, test-on-real figures: per-label AUROC of each arm with its
interval, and the learning curve of the scarce-data arms."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg

from cxrgan_desktop.engine.tstr.results import label_intervals, learning_curve, main_arms
from cxrgan_desktop.gui.reports.figures import (
    PaperPlot,
    export_plots,
    offscreen_application,
    series_colour,
)

CHANCE = 0.5
SERIES_COLOURS = {"real only": (0, 0, 0), "real + synthetic": (20, 90, 200),
                  "synthetic only": (40, 140, 40)}


def _arrays(points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, low, high) as float arrays, NaN where a value is undefined."""
    as_float = [[math.nan if v is None else float(v) for v in p] for p in points]
    values = np.array(as_float, dtype=float).reshape(-1, 3)
    return values[:, 0], values[:, 1], values[:, 2]


def _y_floor(lows: np.ndarray) -> float:
    defined = lows[np.isfinite(lows)]
    return max(0.0, min(CHANCE, float(defined.min()) if defined.size else CHANCE) - 0.05)


class AurocBarsPlot(PaperPlot):
    """One group of bars per label (and the macro mean), one bar per arm, drawn up from
    chance so that differences between arms are what the eye compares."""

    def __init__(self) -> None:
        super().__init__("AUROC on the real test set (95 % patient-bootstrap interval)", "",
                         "AUROC")
        self.legend = self.add_legend(offset=(10, 10))

    def show_results(self, results: dict[str, Any]) -> None:
        self.clear()
        self.legend.clear()
        arms = main_arms(results)
        labels = [e["label"] for e in next(iter(results["arms"].values()))["statistics"]
                  ["labels"]] + ["macro"]
        width = 0.8 / max(len(arms), 1)
        lows_seen = []
        for index, arm in enumerate(arms):
            estimate, low, high = _arrays(label_intervals(results, arm))
            x = np.arange(len(labels)) - 0.4 + width * (index + 0.5)
            colour = series_colour(index, len(arms))
            shown = np.isfinite(estimate)
            bars = pg.BarGraphItem(x=x[shown], y0=CHANCE, height=estimate[shown] - CHANCE,
                                   width=width * 0.9, brush=colour, pen=pg.mkPen("k"))
            self.addItem(bars)
            self.legend.addItem(bars, arm)
            ok = shown & np.isfinite(low) & np.isfinite(high)
            self.addItem(pg.ErrorBarItem(x=x[ok], y=estimate[ok], top=high[ok] - estimate[ok],
                                         bottom=estimate[ok] - low[ok], beam=width * 0.3,
                                         pen=pg.mkPen("k", width=1.5)))
            lows_seen.append(low)
        self.addItem(pg.InfiniteLine(CHANCE, angle=0, pen=pg.mkPen((120, 120, 120), width=1)))
        self.getPlotItem().getAxis("bottom").setTicks([list(enumerate(labels))])
        self.setXRange(-0.6, len(labels) - 0.4, padding=0)
        floor = _y_floor(np.concatenate(lows_seen)) if lows_seen else 0.4
        self.setYRange(floor, 1.0, padding=0.02)


class LearningCurvePlot(PaperPlot):
    """Macro AUROC as the real training data shrinks, with and without the synthetic set;
    the synthetic-only arm as a dashed line for reference."""

    def __init__(self) -> None:
        super().__init__("Does synthetic data help when real data is scarce?",
                         "Fraction of real training patients", "Macro AUROC (95 % interval)")
        self.legend = self.add_legend()

    def show_results(self, results: dict[str, Any]) -> None:
        self.clear()
        self.legend.clear()
        curves = learning_curve(results)
        lows_seen = []
        for index, (series, points) in enumerate(curves.items()):
            # the two series sit a hair apart so that their intervals do not hide each other
            fractions = np.array([f for f, _ in points]) + (index - 0.5) * 0.012
            estimate, low, high = _arrays([p for _, p in points])
            colour = SERIES_COLOURS[series]
            self.plot(fractions, estimate, pen=pg.mkPen(colour, width=2), symbol="os"[index % 2],
                      symbolSize=9, symbolBrush=colour, symbolPen=colour, name=series)
            ok = np.isfinite(low) & np.isfinite(high) & np.isfinite(estimate)
            self.addItem(pg.ErrorBarItem(x=fractions[ok], y=estimate[ok],
                                         top=high[ok] - estimate[ok],
                                         bottom=estimate[ok] - low[ok], beam=0.02,
                                         pen=pg.mkPen(colour, width=1.5)))
            lows_seen.append(low)
        synthetic = results["arms"].get("synthetic")
        if synthetic is not None and synthetic["statistics"]["macro_auroc"] is not None:
            level = synthetic["statistics"]["macro_auroc"]
            line = self.plot([0, 1], [level, level], name="synthetic only", pen=pg.mkPen(
                SERIES_COLOURS["synthetic only"], width=2,
                style=pg.QtCore.Qt.PenStyle.DashLine))
            line.setZValue(-1)
            lows_seen.append(np.array([level]))
        self.setXRange(0, 1.02, padding=0.02)
        floor = _y_floor(np.concatenate(lows_seen)) if lows_seen else 0.4
        self.setYRange(floor, 1.0, padding=0.02)


def tstr_plots(results: dict[str, Any]) -> dict[str, PaperPlot]:
    """``{file stem: plot}``; the learning curve only when the experiment had scarce arms."""
    bars = AurocBarsPlot()
    bars.show_results(results)
    plots: dict[str, PaperPlot] = {"auroc": bars}
    if learning_curve(results):
        curve = LearningCurvePlot()
        curve.show_results(results)
        plots["learning_curve"] = curve
    return plots


def write_tstr_plots(results: dict[str, Any], folder: str | os.PathLike[str]) -> list[Path]:
    """The figures as PNG and PDF, without a window (``cxrgan tstr`` on a headless server)."""
    offscreen_application()
    return export_plots(tstr_plots(results), folder)
