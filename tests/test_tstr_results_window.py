"""The TSTR results window shows the figures ``cxrgan tstr`` writes, from the same drawing
functions, and its export writes the same bytes."""

from __future__ import annotations

import json

import pytest
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from PySide6.QtWidgets import QMessageBox

from cxrgan_desktop.figures.tstr import PLOT_FILES, write_tstr_figures
from cxrgan_desktop.gui.reports.tstr_results import TSTRResultsWindow
from tests.figure_data import tstr_results


@pytest.fixture(autouse=True)
def no_dialogs(monkeypatch):
    for kind in ("information", "warning"):
        monkeypatch.setattr(QMessageBox, kind, lambda *a, **k: None)


def test_the_window_embeds_both_figures_and_exports_the_same_files(qtbot, tmp_path):
    results = tstr_results()
    window = TSTRResultsWindow(results, tmp_path)
    qtbot.addWidget(window)
    window.show()
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert titles == ["Arms", "AUROC per finding", "Learning curve", "Report"]
    for index, stem in ((1, "auroc"), (2, "learning_curve")):
        canvas = window.tabs.widget(index)
        assert isinstance(canvas, FigureCanvasQTAgg) and canvas.figure is window.figures[stem]
    bars = window.figures["auroc"].axes[0].get_legend().get_texts()
    assert [t.get_text() for t in bars] == ["real", "synthetic", "mixed"]

    written = window.export_to(tmp_path / "export")
    assert sorted(p.name for p in written) == sorted(
        ["results.json", "results.txt", *PLOT_FILES])
    assert json.loads((tmp_path / "export" / "results.json").read_text()) == results
    for path in write_tstr_figures(results, tmp_path / "cli"):
        assert (tmp_path / "export" / path.name).read_bytes() == path.read_bytes(), path.name


def test_without_scarce_arms_there_is_no_learning_curve_tab(qtbot, tmp_path):
    window = TSTRResultsWindow(tstr_results(scarce=False), tmp_path)
    qtbot.addWidget(window)
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        "Arms", "AUROC per finding", "Report"]
    assert set(window.figures) == {"auroc"}
