"""The reader-study figures: ROC curves per reader and accuracy with exact intervals, drawn
black on white so that an exported PNG or PDF drops into a paper as it is."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QMarginsF, QRectF, QSizeF
from PySide6.QtGui import QPageLayout, QPageSize, QPainter, QPdfWriter

from cxrgan_desktop.quiz.analysis import Analysis, ReaderStats, reader_roc_curves
from cxrgan_desktop.quiz.results_table import ResultRow

PLOT_FILES = ("roc.png", "roc.pdf", "accuracy.png", "accuracy.pdf")
EXPORT_SIZE = (1200, 900)
_headless_app = None  # px of the PNG; the PDF keeps the same aspect
POOLED_PEN = pg.mkPen("k", width=3)


def reader_colour(index: int, count: int):
    return pg.intColor(index, hues=max(count, 1), values=1, maxValue=200, sat=220)


class _StudyPlot(pg.PlotWidget):
    def __init__(self, title: str, x_label: str, y_label: str) -> None:
        super().__init__(background="w")
        item = self.getPlotItem()
        item.setTitle(title, color="k", size="13pt")
        for side, text in (("bottom", x_label), ("left", y_label)):
            axis = item.getAxis(side)
            axis.setPen("k")
            axis.setTextPen("k")
            axis.setLabel(text, color="k")
        item.showGrid(x=True, y=True, alpha=0.15)
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)


class ROCPlot(_StudyPlot):
    """Each reader's operating points joined into an ROC curve, with the chance diagonal."""

    def __init__(self) -> None:
        super().__init__("ROC: detecting synthetic images", "False positive rate "
                         "(real called synthetic)", "True positive rate (synthetic caught)")
        self.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)
        self.legend = self.getPlotItem().addLegend(
            offset=(-10, -10), labelTextColor="k", brush=pg.mkBrush(255, 255, 255, 220),
            pen="k")  # bottom right, where ROC curves rarely go

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


class AccuracyPlot(_StudyPlot):
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
    return [export_plot(roc if name.startswith("roc") else accuracy, Path(folder) / name)
            for name in PLOT_FILES]


def write_study_plots(rows: list[ResultRow], analysis: Analysis,
                      folder: str | os.PathLike[str]) -> list[Path]:
    """The figures without a window (``cxrgan quiz analyse --plots``, on a headless server):
    Qt draws them offscreen when no application is running."""
    global _headless_app
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _headless_app = QApplication([])  # kept: widgets must not outlive their application
    roc, accuracy = study_plots(rows, analysis)
    return export_study_plots(roc, accuracy, folder)


def export_plot(plot: pg.PlotWidget, path: str | os.PathLike[str]) -> Path:
    """Write ``plot`` as PNG (EXPORT_SIZE) or PDF (PDF_DPI) by the file's suffix,
    atomically: a half-written figure never replaces a good one."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".png", ".pdf"):
        raise ValueError(f"{target.name}: plots are saved as .png or .pdf")
    if not plot.isVisible():
        _lay_out_unshown(plot)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.stem}.partial{suffix}")
    try:
        if suffix == ".png":
            _write_png(plot, temporary)
        else:
            _write_pdf(plot, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target


def _lay_out_unshown(plot: pg.PlotWidget) -> None:
    """Give a never-shown plot the export size and let its scene lay out, as showing it
    would (without this, titles and axes keep their initial cramped geometry)."""
    from PySide6.QtWidgets import QApplication

    plot.resize(*EXPORT_SIZE)
    plot.resizeEvent(None)  # pyqtgraph sizes its central item here
    plot.getPlotItem().layout.activate()
    QApplication.processEvents()


def _plot_image(plot: pg.PlotWidget, width: int):
    from pyqtgraph.exporters import ImageExporter

    exporter = ImageExporter(plot.getPlotItem())
    exporter.parameters()["width"] = width
    image = exporter.export(toBytes=True)
    if image is None or image.isNull():
        raise OSError("the plot could not be drawn")
    return image


def _write_png(plot: pg.PlotWidget, path: Path) -> None:
    if not _plot_image(plot, EXPORT_SIZE[0]).save(str(path), "PNG"):
        raise OSError(f"{path.name}: the image could not be written")


def _write_pdf(plot: pg.PlotWidget, path: Path) -> None:
    """A page of EXPORT_SIZE points holding the plot drawn at twice the PNG's pixels.
    Raster, not vector: Qt's PDF painter misplaces pyqtgraph's data items and pyqtgraph's
    SVG exporter fails on these plots; at 144 dpi the hairlines stay visible (half a point)
    and the text sharp in print."""
    image = _plot_image(plot, 2 * EXPORT_SIZE[0])
    points = QSizeF(EXPORT_SIZE[0], EXPORT_SIZE[0] * image.height() / image.width())
    writer = QPdfWriter(str(path))
    writer.setResolution(144)
    writer.setPageSize(QPageSize(points, QPageSize.Unit.Point))
    writer.setPageMargins(QMarginsF(0, 0, 0, 0), QPageLayout.Unit.Point)
    painter = QPainter(writer)
    try:
        painter.drawImage(QRectF(0, 0, writer.width(), writer.height()), image)
    finally:
        painter.end()
