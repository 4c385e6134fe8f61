"""The reader-study figures: ROC curves per reader and accuracy with exact intervals, drawn
black on white so that an exported PNG or PDF drops into a paper as it is."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg

from cxrgan_desktop.gui.reports.figures import PaperPlot, export_plots, offscreen_application
from cxrgan_desktop.gui.reports.figures import series_colour as reader_colour
from cxrgan_desktop.study.analysis import Analysis, ReaderStats, reader_roc_curves
from cxrgan_desktop.study.results_table import ResultRow

PLOT_FILES = ("roc.png", "roc.pdf", "accuracy.png", "accuracy.pdf")


class ROCPlot(PaperPlot):
    """Each reader's operating points joined into an ROC curve, with the chance diagonal."""

    def __init__(self) -> None:
        super().__init__("ROC: detecting synthetic images", "False positive rate "
                         "(real called synthetic)", "True positive rate (synthetic caught)")
        self.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        self.legend = self.add_legend()  # bottom right, where ROC curves rarely go

    def show_curves(self, curves: dict[str, tuple[np.ndarray, np.ndarray]],
                    aucs: dict[str, float]) -> None:
        self.clear()
        self.legend.clear()
        self.plot([0, 1], [0, 1], pen=pg.mkPen((150, 150, 150), width=1,
                                               style=pg.QtCore.Qt.PenStyle.DashLine))
        for index, (reader, (fpr, tpr)) in enumerate(curves.items()):
            colour = reader_colour(index, len(curves))
            auc = aucs.get(reader, math.nan)
            name = reader if not math.isfinite(auc) else f"{reader} (AUC {auc:.2f})"
            self.plot(fpr, tpr, pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=6,
                      symbolBrush=colour, symbolPen=colour, name=name)


class AccuracyPlot(PaperPlot):
    """Accuracy per reader and pooled, with Clopper-Pearson 95 % intervals and the 50 %
    line a reader who guesses would sit on."""

    def __init__(self) -> None:
        super().__init__("Accuracy (95 % exact interval)", "", "Accuracy")
        self.setYRange(0, 1, padding=0.02)

    def show_stats(self, readers: list[ReaderStats], pooled: ReaderStats) -> None:
        self.clear()
        rows = [*readers, pooled]
        x = np.arange(len(rows), dtype=float)
        self.addItem(pg.InfiniteLine(0.5, angle=0, pen=pg.mkPen(
            (150, 150, 150), width=1, style=pg.QtCore.Qt.PenStyle.DashLine)))
        accuracy = np.array([r.accuracy for r in rows])
        low = np.array([r.accuracy_low for r in rows])
        high = np.array([r.accuracy_high for r in rows])
        self.addItem(pg.ErrorBarItem(x=x, y=accuracy, top=high - accuracy,
                                     bottom=accuracy - low, beam=0.25, pen=pg.mkPen("k", width=2)))
        brushes = [reader_colour(i, len(readers)) for i in range(len(readers))] + ["k"]
        self.plot(x, accuracy, pen=None, symbol="s", symbolSize=11, symbolBrush=brushes,
                  symbolPen="k")
        axis = self.getPlotItem().getAxis("bottom")
        axis.setTicks([[(i, "pooled" if i == len(rows) - 1 else r.reader[:14])
                        for i, r in enumerate(rows)]])
        self.setXRange(-0.6, len(rows) - 0.4, padding=0)
        self.setYRange(0, 1, padding=0.02)


def study_plots(rows: list[ResultRow], analysis: Analysis) -> tuple[ROCPlot, AccuracyPlot]:
    roc = ROCPlot()
    roc.show_curves(reader_roc_curves(rows), {s.reader: s.auc for s in analysis.readers})
    accuracy = AccuracyPlot()
    accuracy.show_stats(analysis.readers, analysis.pooled)
    return roc, accuracy


def export_study_plots(roc: ROCPlot, accuracy: AccuracyPlot, folder: str | os.PathLike[str]
                       ) -> list[Path]:
    """PLOT_FILES into ``folder``."""
    return export_plots({"roc": roc, "accuracy": accuracy}, folder)


def write_study_plots(rows: list[ResultRow], analysis: Analysis,
                      folder: str | os.PathLike[str]) -> list[Path]:
    """The figures without a window (``cxrgan study analyse --plots``, on a headless server)."""
    offscreen_application()
    roc, accuracy = study_plots(rows, analysis)
    return export_study_plots(roc, accuracy, folder)
