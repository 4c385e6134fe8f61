"""Figures for papers: black-on-white pyqtgraph plots and their export to PNG and PDF, also
on a headless server (Qt draws offscreen when no application is running).

Shared by the reader-study plots and the train-on-synthetic experiment's plots.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QMarginsF, QRectF, QSizeF
from PySide6.QtGui import QPageLayout, QPageSize, QPainter, QPdfWriter

EXPORT_SIZE = (1200, 900)  # px of the PNG; the PDF keeps the same aspect
_headless_app = None


def series_colour(index: int, count: int):
    """Distinct, print-safe colours for ``count`` series (readers, experiment arms)."""
    return pg.intColor(index, hues=max(count, 1), values=1, maxValue=200, sat=220)


class PaperPlot(pg.PlotWidget):
    """A plot styled to drop into a paper as exported: white, black axes, light grid."""

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

    def add_legend(self, offset: tuple[int, int] = (-10, -10)):
        return self.getPlotItem().addLegend(
            offset=offset, labelTextColor="k", brush=pg.mkBrush(255, 255, 255, 220), pen="k")


def offscreen_application() -> None:
    """Make sure a QApplication exists; on a machine without a display, an offscreen one."""
    global _headless_app
    from PySide6.QtWidgets import QApplication

    if QApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _headless_app = QApplication([])  # kept: widgets must not outlive their application


def export_with_feedback(parent, folder: Path, write) -> list[Path]:
    """Run ``write()`` (which returns the files it wrote) and tell the user what happened:
    the files written, or why the export is incomplete."""
    from PySide6.QtWidgets import QMessageBox

    try:
        written = write()
    except (OSError, ValueError) as error:
        QMessageBox.warning(parent, "Export incomplete", f"{folder}: {error}")
        return []
    QMessageBox.information(parent, "Exported", f"Wrote {len(written)} files to {folder}:\n"
                            + ", ".join(p.name for p in written))
    return written


def export_plots(plots: dict[str, pg.PlotWidget], folder: str | os.PathLike[str]
                 ) -> list[Path]:
    """``{stem: plot}`` as ``stem.png`` and ``stem.pdf`` in ``folder``."""
    return [export_plot(plot, Path(folder) / f"{stem}{suffix}")
            for stem, plot in plots.items() for suffix in (".png", ".pdf")]


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
