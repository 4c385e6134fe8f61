"""The study results window shows the figures the command line writes (the same drawing
functions, in matplotlib's Qt canvas), and its export writes the same bytes."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
import pytest
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from PySide6.QtWidgets import QMessageBox
from sklearn.metrics import roc_auc_score

from cxrgan_desktop.figures.paper import series_colour
from cxrgan_desktop.figures.study import PLOT_FILES, write_study_figures
from cxrgan_desktop.gui.reports.study_results import StudyResultsWindow
from cxrgan_desktop.study.analysis import analyse
from tests.figure_data import READERS, study_rows


@pytest.fixture
def shown_messages(monkeypatch):
    """(kind, text) of each message box, instead of showing it."""
    shown: list[tuple[str, str]] = []
    for kind in ("information", "warning"):
        monkeypatch.setattr(QMessageBox, kind,
                            lambda *a, kind=kind, **k: shown.append((kind, a[2])))
    return shown


def _rgb(image, x: int, y: int) -> tuple[int, int, int]:
    colour = image.pixelColor(x, y)
    return colour.red(), colour.green(), colour.blue()


def test_the_window_embeds_the_figures_and_exports_the_same_files(qtbot, tmp_path,
                                                                   shown_messages):
    rows = study_rows()
    window = StudyResultsWindow(rows, analyse(rows), "results.csv", from_sessions=True)
    qtbot.addWidget(window)
    window.show()
    tabs = {window.tabs.tabText(i): window.tabs.widget(i) for i in range(window.tabs.count())}
    assert list(tabs) == ["Summary", "ROC curves", "Accuracy", "Report"]
    assert isinstance(tabs["ROC curves"], FigureCanvasQTAgg)
    assert tabs["ROC curves"].figure is window.figures["roc"]
    assert tabs["Accuracy"].figure is window.figures["accuracy"]
    legend = [t.get_text() for t in window.figures["roc"].axes[0].get_legend().get_texts()]
    expected = []
    for reader in sorted(READERS):
        group = [r for r in rows if r.reader == reader]
        auc = roc_auc_score([r.truth == "synthetic" for r in group], [r.rating for r in group])
        expected.append(f"{reader} (AUC {auc:.2f})")
    assert legend == expected

    window.tabs.setCurrentWidget(tabs["ROC curves"])
    qtbot.waitExposed(window)
    image = tabs["ROC curves"].grab().toImage()
    assert image.width() > 300 and image.height() > 200
    first = np.array(series_colour(0, len(READERS))) * 255
    pixels = np.array([_rgb(image, x, y) for x in range(0, image.width(), 2)
                       for y in range(0, image.height(), 2)])
    assert (np.abs(pixels - first).max(axis=1) < 10).sum() > 20  # the first curve is drawn
    assert (pixels == 255).all(axis=1).mean() > 0.5

    written = window.export_to(tmp_path / "export")
    assert {p.name for p in written} >= set(PLOT_FILES) | {"summary.json", "results.csv"}
    assert shown_messages[-1][0] == "information" and "Wrote" in shown_messages[-1][1]
    reference = write_study_figures(rows, analyse(rows), tmp_path / "cli")
    for path in reference:
        assert (tmp_path / "export" / path.name).read_bytes() == path.read_bytes(), path.name


def test_an_export_that_cannot_write_says_so(qtbot, tmp_path, shown_messages):
    rows = study_rows()
    window = StudyResultsWindow(rows, analyse(rows), "results.csv", from_sessions=False)
    qtbot.addWidget(window)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert window.export_to(blocked / "export") == []
    kind, text = shown_messages[-1]
    assert kind == "warning" and "a-file" in text
    assert not (tmp_path / "export").exists()


@pytest.mark.parametrize("count", [1, 3, 7])
def test_series_colours_are_the_hues_the_pyqtgraph_plots_used(count):
    for index in range(count):
        before = pg.intColor(index, hues=count, values=1, maxValue=200, sat=220).getRgbF()[:3]
        assert series_colour(index, count) == pytest.approx(before, abs=1 / 255)
