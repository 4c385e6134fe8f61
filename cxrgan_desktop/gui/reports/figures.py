"""The paper figures in a window: :mod:`cxrgan_desktop.figures` draws them (for the command
line too); here they are embedded in matplotlib's Qt canvas, and an export reports back."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# matplotlib's Qt backend uses an already imported binding; the variable covers a caller that
# reaches this module before anything imported PySide6 (PyQt is never a candidate)
os.environ.setdefault("QT_API", "pyside6")

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtWidgets import QMessageBox, QWidget

MINIMUM_CANVAS = (320, 240)  # px; below this the axes labels no longer fit


def figure_canvas(figure: Figure) -> FigureCanvasQTAgg:
    """``figure`` as a widget that redraws it at the size the window gives it."""
    canvas = FigureCanvasQTAgg(figure)
    canvas.setMinimumSize(*MINIMUM_CANVAS)
    return canvas


def export_with_feedback(parent: QWidget, folder: Path, write: Callable[[], list[Path]]
                         ) -> list[Path]:
    """Run ``write()`` (which returns the files it wrote) and tell the user what happened:
    the files written, or why the export is incomplete."""
    try:
        written = write()
    except (OSError, ValueError) as error:
        QMessageBox.warning(parent, "Export incomplete", f"{folder}: {error}")
        return []
    QMessageBox.information(parent, "Exported", f"Wrote {len(written)} files to {folder}:\n"
                            + ", ".join(p.name for p in written))
    return written
