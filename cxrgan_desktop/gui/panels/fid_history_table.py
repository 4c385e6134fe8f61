"""The FID panel's results table: every measurement with its settings, newest first.

Each row's tooltip holds the full settings and warnings; Ctrl+C copies the selected rows as
tab-separated text (with a header), ready for a spreadsheet or a paper's table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from cxrgan_desktop.metrics.fid_settings import RECOMMENDED_N

COLUMNS = ("When", "Real", "N", "Synthetic", "N", "FID", "KID ×10³", "Precision", "Recall",
           "Density", "Coverage", "Resize", "Device")


def _side_name(side: dict[str, Any]) -> str:
    """Short enough for a narrow dock; the tooltip has the whole path."""
    if side.get("kind") == "model":
        return f"model:{Path(side['location']).stem} (seed {side.get('seed')})"
    return Path(side.get("location", "?")).name


def row_cells(record: dict[str, Any]) -> list[str]:
    """The table's texts for one history record (also what Copy writes)."""
    real, fake = record.get("real", {}), record.get("fake", {})
    small = any((s.get("n") or RECOMMENDED_N) < RECOMMENDED_N for s in (real, fake))
    kid = record.get("kid")
    kid_text = (f"{kid['mean'] * 1e3:.3f} ± {kid['std'] * 1e3:.3f}" if kid else "n/a")
    settings = record.get("settings", {})
    prdc = record.get("prdc") or {}  # older records and statistics without features: n/a
    prdc_cells = [f"{prdc[name]:.3f}" if name in prdc else "n/a"
                  for name in ("precision", "recall", "density", "coverage")]
    return [record.get("finished", "")[5:16].replace("T", " "),
            _side_name(real), str(real.get("n") or "?"),
            _side_name(fake), str(fake.get("n") or "?"),
            f"{record.get('fid', float('nan')):.3f}" + (" ⚠" if small else ""),
            kid_text, *prdc_cells, settings.get("resize", "?"), settings.get("device", "?")]


def row_tooltip(record: dict[str, Any]) -> str:
    settings = record.get("settings", {})
    lines = [f"{name}: {record[side].get('label', record[side].get('location'))}"
             for side, name in (("real", "Reference"), ("fake", "Measured")) if side in record]
    lines += [f"{key}: {value}" for key, value in settings.items()]
    kid = record.get("kid")
    if kid:
        lines.append(f"KID: {kid['subsets']} subsets of {kid['subset_size']}, seed "
                     f"{kid['seed']}, kernel {kid.get('kernel', '')}")
    prdc = record.get("prdc")
    if prdc:
        lines.append(f"precision/recall/density/coverage: k = {prdc['k']} nearest neighbours "
                     f"in {prdc['feature_dim']}-d features (Kynkaanniemi 2019, Naeem 2020)")
    relative = record.get("relative")
    if relative:
        lines.append(f"relative FD {relative['ratio']:.3f} ({100 * relative['level']:.0f} % "
                     f"{relative['ratio_low']:.3f} - {relative['ratio_high']:.3f}) against "
                     f"{relative['real_b']['label']} (N={relative['real_b']['n']})")
    lines += [f"⚠ {w}" for w in record.get("warnings", [])]
    lines.append(f"took {record.get('seconds', '?')} s")
    return "\n".join(lines)


class FIDHistoryTable(QTableWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        self.setWordWrap(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Interactive)
        self.records: list[dict[str, Any]] = []

    def set_records(self, records: list[dict[str, Any]]) -> None:
        """Show ``records`` (oldest first, as stored) newest at the top."""
        self.records = list(records)
        self.setRowCount(0)
        for record in reversed(self.records):
            row = self.rowCount()
            self.insertRow(row)
            tip = row_tooltip(record)
            for column, text in enumerate(row_cells(record)):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                self.setItem(row, column, item)

    def copy_selection(self) -> str:
        rows = sorted({index.row() for index in self.selectedIndexes()})
        lines = ["\t".join(COLUMNS)]
        for row in rows:
            lines.append("\t".join(self.item(row, c).text() for c in range(len(COLUMNS))))
        text = "\n".join(lines)
        QGuiApplication.clipboard().setText(text)
        return text

    def keyPressEvent(self, event) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy_selection()
            return
        super().keyPressEvent(event)
