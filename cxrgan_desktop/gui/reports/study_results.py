"""The organiser's view of a finished study: the statistics table, ROC curves per reader,
accuracy with intervals, the full report, and one button that exports all of it."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase
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

from cxrgan_desktop.figures.study import study_figures, write_study_figures
from cxrgan_desktop.gui.reports.figures import export_with_feedback, figure_canvas
from cxrgan_desktop.study.analysis import Analysis, ReaderStats, report_text
from cxrgan_desktop.study.results_table import ResultRow

COLUMNS = ("Reader", "n", "Accuracy", "95 % CI", "p (vs 50 %)", "Sensitivity", "Specificity",
           "AUC", "AUC 95 % CI", "s / case")


def _pct(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{100 * value:.1f} %"


def summary_cells(s: ReaderStats) -> list[str]:
    """One table row; undefined statistics (a reader who saw one class only) show as –."""
    auc_ci = ("–" if not math.isfinite(s.auc_low) else f"{s.auc_low:.3f} – {s.auc_high:.3f}")
    return [s.reader, str(s.n), _pct(s.accuracy),
            f"{_pct(s.accuracy_low)} – {_pct(s.accuracy_high)}", f"{s.p_value:.3g}",
            _pct(s.sensitivity), _pct(s.specificity),
            "–" if not math.isfinite(s.auc) else f"{s.auc:.3f}", auc_ci,
            "–" if s.mean_seconds is None else f"{s.mean_seconds:.1f}"]


class StudyResultsWindow(QWidget):
    """``rows`` and their ``analysis``; ``from_sessions``: the rows were scored here (so the
    export includes results.csv), not read from a table."""

    def __init__(self, rows: list[ResultRow], analysis: Analysis, source: str,
                 from_sessions: bool, warnings: list[str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.rows, self.analysis, self.from_sessions = rows, analysis, from_sessions
        self.setWindowTitle("Reader study results")
        readers = len(analysis.readers)
        cases = len({r.case for r in rows})
        heading = QLabel(f"<b>{readers} reader(s), {len(rows)} answers, {cases} cases</b>"
                         f" &nbsp;·&nbsp; {source}")
        heading.setWordWrap(True)
        self.warnings = QLabel("<br>".join(f"⚠ {w}" for w in warnings or []))
        self.warnings.setStyleSheet("color: #b05000;")
        self.warnings.setVisible(bool(warnings))
        self.warnings.setWordWrap(True)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        self._fill_table()
        self.figures = study_figures(rows, analysis)  # the same drawing as the export's
        self.roc_canvas = figure_canvas(self.figures["roc"])
        self.accuracy_canvas = figure_canvas(self.figures["accuracy"])
        self.report = QPlainTextEdit(report_text(analysis))
        self.report.setReadOnly(True)
        self.report.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.report.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)

        self.tabs = QTabWidget()
        self.tabs.addTab(self.table, "Summary")
        self.tabs.addTab(self.roc_canvas, "ROC curves")
        self.tabs.addTab(self.accuracy_canvas, "Accuracy")
        self.tabs.addTab(self.report, "Report")
        self.export_button = QPushButton("Export report and plots…")
        self.export_button.setToolTip("summary.json, report.txt, MRMC tables, ROC and accuracy "
                                      "plots as PNG and PDF")
        self.export_button.clicked.connect(self.choose_export_folder)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.warnings)
        layout.addWidget(self.tabs, 1)
        layout.addLayout(buttons)
        self.resize(1100, 760)

    def _fill_table(self) -> None:
        rows = [*self.analysis.readers, self.analysis.pooled]
        self.table.setRowCount(len(rows))
        bold = QFont()
        bold.setBold(True)
        for r, stats in enumerate(rows):
            for c, text in enumerate(summary_cells(stats)):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if stats is self.analysis.pooled:
                    item.setFont(bold)
                self.table.setItem(r, c, item)

    def choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the analysis to", str(Path.home()))
        if folder:
            self.export_to(Path(folder))

    def export_to(self, folder: Path) -> list[Path]:
        from cxrgan_desktop.study.analysis_export import write_analysis

        def write() -> list[Path]:
            return write_analysis(self.rows, self.analysis, folder,
                                  include_results=self.from_sessions) + \
                write_study_figures(self.rows, self.analysis, folder)

        return export_with_feedback(self, folder, write)
