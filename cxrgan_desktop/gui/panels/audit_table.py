"""The Audit tab's results: one row per synthetic image, most at risk first, as the audit's
``audit.csv`` ranks them.

A table model rather than a table of items: an audit of 10,000 generates would otherwise make
110,000 widgets items on the GUI thread before the first row shows.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from cxrgan_desktop.tasks.audit_file import AuditReport, AuditRow

SPACE_NAMES = {"pixels": "pixels", "reid": "re-id", "inception": "Inception"}
FLAGGED_BACKGROUND = QColor(214, 80, 60, 90)
FLAG = "⚑ flagged"

_Index = QModelIndex | QPersistentModelIndex


def percent(fraction: float) -> str:
    """A held-out fraction or alpha as a short percentage (0.1 %, 0 %, 12.5 %)."""
    value = 100.0 * fraction
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text} %"


class AuditTableModel(QAbstractTableModel):
    """Rank, flag, synthetic file, per space the similarity and held-out fraction, then the
    nearest training file and its patient in the chosen space."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: AuditReport | None = None
        self.space = ""

    # -- contents ---------------------------------------------------------------------------
    def set_report(self, report: AuditReport | None) -> None:
        self.beginResetModel()
        self.report = report
        spaces = report.spaces if report is not None else ()
        if self.space not in spaces:
            self.space = spaces[0] if spaces else ""
        self.endResetModel()

    def set_space(self, space: str) -> None:
        """The space whose nearest training file and patient the last two columns show."""
        self.space = space
        if self.report is not None and self.report.rows:
            first = self.columnCount() - 2
            self.headerDataChanged.emit(Qt.Orientation.Horizontal, first, first + 1)
            self.dataChanged.emit(self.index(0, first),
                                  self.index(self.rowCount() - 1, first + 1))

    def row_at(self, row: int) -> AuditRow | None:
        if self.report is None or not 0 <= row < len(self.report.rows):
            return None
        return self.report.rows[row]

    def headers(self) -> list[str]:
        spaces = self.report.spaces if self.report is not None else ()
        columns = ["Rank", "Flagged", "Synthetic"]
        for space in spaces:
            name = SPACE_NAMES.get(space, space)
            columns += [f"{name} similarity", f"{name} held-out"]
        label = SPACE_NAMES.get(self.space, self.space)
        return [*columns, f"Nearest training ({label})", "Patient"]

    def cells(self, row: AuditRow) -> list[str]:
        spaces = self.report.spaces if self.report is not None else ()
        values = [str(row.rank), FLAG if row.flagged else "", row.synthetic_file]
        for space in spaces:
            match = row.matches[space]
            values += [f"{match.similarity:.4f}" + (" ⚑" if match.flagged else ""),
                       percent(match.heldout_fraction)]
        match = row.matches.get(self.space)
        values += [match.training_file, match.patient] if match else ["", ""]
        return values

    # -- Qt ---------------------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        if parent.isValid() or self.report is None:
            return 0
        return len(self.report.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() or self.report is None else len(self.headers())

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            headers = self.headers()
            return headers[section] if 0 <= section < len(headers) else None
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = self.row_at(index.row()) if index.isValid() else None
        if row is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cells(row)[index.column()]
        if role == Qt.ItemDataRole.BackgroundRole and row.flagged:
            return QBrush(FLAGGED_BACKGROUND)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 0:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _tooltip(self, row: AuditRow) -> str:
        lines = [f"{row.synthetic_file}  (risk {row.risk:.4f})"]
        for space, match in row.matches.items():
            lines.append(f"{SPACE_NAMES.get(space, space)}: {match.training_file} "
                         f"(patient {match.patient}), similarity {match.similarity:.4f}, "
                         f"held-out {percent(match.heldout_fraction)}"
                         + ("  FLAGGED" if match.flagged else ""))
        return "\n".join(lines)


class AuditTable(QTableView):
    """The results table: whole rows selected, one at a time; arrow keys step through."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.audit_model = AuditTableModel(self)
        self.setModel(self.audit_model)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(False)  # the flagged rows' colour must stand out
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(22)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.horizontalHeader().setStretchLastSection(True)
        self.setMinimumHeight(180)

    def set_report(self, report: AuditReport | None) -> None:
        self.audit_model.set_report(report)
        if report is not None and report.rows:
            # widths from the first rows only: sizing to 10,000 rows reads every cell
            for column in range(self.audit_model.columnCount()):
                self.resizeColumnToContents(column)
                self.setColumnWidth(column, min(self.columnWidth(column), 260))

    def sizeHintForColumn(self, column: int) -> int:
        model = self.audit_model
        texts = [model.headers()[column]] + [
            model.cells(row)[column] for row in (model.report.rows[:200] if model.report else [])]
        metrics = self.fontMetrics()
        return max(metrics.horizontalAdvance(text) for text in texts) + 16

    def current_row(self) -> AuditRow | None:
        index = self.currentIndex()
        return self.audit_model.row_at(index.row()) if index.isValid() else None

    def select_row(self, row: int) -> None:
        self.selectRow(row)
        self.setCurrentIndex(self.audit_model.index(row, 0))
