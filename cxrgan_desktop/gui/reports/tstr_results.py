"""A finished train-on-synthetic, test-on-real experiment: the table of arms, per-label AUROC
bars, the learning curve, the text report, and an export of all of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.engine.tstr.results import results_table, summary_rows
from cxrgan_desktop.figures.tstr import tstr_figures, write_tstr_figures
from cxrgan_desktop.gui.reports.figures import export_with_feedback, figure_canvas

TAB_TITLES = {"auroc": "AUROC per finding", "learning_curve": "Learning curve"}


class TSTRResultsWindow(QWidget):
    def __init__(self, results: dict[str, Any], folder: Path,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.results, self.folder = results, folder
        self.setWindowTitle(f"TSTR results: {folder}")
        split = results["split"]
        heading = QLabel(
            f"<b>{len(results['arms'])} arms tested on {split['test_images']} real images of "
            f"{split['test_patients']} patients</b> (none of them in any training set); "
            f"{results['bootstrap']} patient-bootstrap resamples. &nbsp;·&nbsp; {folder}")
        heading.setWordWrap(True)
        header, rows = summary_rows(results)
        self.table = QTableWidget(len(rows), len(header))
        self.table.setHorizontalHeaderLabels(header)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.setToolTip("vs real: macro AUROC difference from the real arm with a "
                              "paired patient-bootstrap interval and p; per-label paired "
                              "DeLong tests are in the Report tab")
        self.figures = tstr_figures(results)  # the same drawing as the export's
        self.report = QPlainTextEdit(results_table(results))
        self.report.setReadOnly(True)
        self.report.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.report.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "Arms")
        self.canvases = {stem: figure_canvas(figure) for stem, figure in self.figures.items()}
        for stem, canvas in self.canvases.items():
            self.tabs.addTab(canvas, TAB_TITLES.get(stem, stem))
        self.tabs.addTab(self.report, "Report")
        self.export_button = QPushButton("Export results and plots…")
        self.export_button.setToolTip("results.json, results.txt and the plots as PNG and PDF")
        self.export_button.clicked.connect(self.choose_export_folder)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(buttons)
        self.resize(1150, 760)

    def choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the results to",
                                                  str(self.folder))
        if folder:
            self.export_to(Path(folder))

    def export_to(self, folder: Path) -> list[Path]:
        from cxrgan_desktop.core.fileio import atomic_write_json, atomic_write_text

        def write() -> list[Path]:
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_json(folder / "results.json", self.results)
            atomic_write_text(folder / "results.txt", results_table(self.results))
            return [folder / "results.json", folder / "results.txt",
                    *write_tstr_figures(self.results, folder)]

        return export_with_feedback(self, folder, write)
