"""The Models tab: known models (cards) and installed ones, their details, and removal."""

from __future__ import annotations

import html
import json
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QLabel,
    QPushButton,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.names import printable
from cxrgan_desktop.store import zoo
from cxrgan_desktop.store.zoo import ModelCard

HINT = ("<p>The paper's generator: download <code>00020_PGGAN_CHEST_XRAY.zip</code> (medigan "
        "model zoo, Zenodo record 7047295), then <b>File ▸ Open model</b> on "
        "<code>Final_Full_Model.pth</code>, or install it once with "
        "<code>cxrgan import-model Final_Full_Model.pth --name segal2020-pggan-cxr14</code>.</p>")


def card_html(card: ModelCard) -> str:
    arch = card.architecture
    rows = [("Resolution", arch.get("resolution")), ("Latent size", arch.get("latent_size")),
            ("Channels", arch.get("channels")), ("Output", arch.get("output")),
            ("Training data", card.training_data), ("Licence", card.licence),
            ("Source", " · ".join(str(v) for k, v in card.source.items()
                                  if k in ("distributor", "record", "archive", "file") and v)),
            ("Citation", card.citation), ("Limitations", card.limitations),
            ("Training", json.dumps(card.training, indent=1) if card.training else None),
            ("Evaluation", json.dumps(card.evaluation, indent=1) if card.evaluation else None)]
    return (f"<h3>{html.escape(card.name)}</h3><p>{html.escape(card.description)}</p>"
            + _table(rows))


def details_html(details: dict) -> str:
    rows = [("Name", details.get("name")), ("Format", details.get("format")),
            ("Resolution", details.get("resolution")), ("Latent size", details.get("latent_size")),
            ("Channels", details.get("channels")), ("File", details.get("file")),
            ("Size", f"{details.get('size_mb')} MB"), ("SHA-256", details.get("sha256"))]
    provenance = details.get("provenance")
    if provenance:
        rows.append(("Provenance", json.dumps(provenance, indent=1, sort_keys=True)))
    return _table(rows)


_JSON_ROWS = ("Provenance", "Training", "Evaluation")  # our own JSON: newlines kept


def _cell(key: str, value) -> str:
    if key in _JSON_ROWS:  # indented JSON: <pre> keeps its lines
        return f"<pre>{html.escape(str(value))}</pre>"
    return f"<code>{html.escape(printable(value))}</code>"


def _table(rows) -> str:
    cells = "".join(f"<tr><td valign='top'><b>{html.escape(k)}</b>&nbsp;</td>"
                    f"<td>{_cell(k, v)}</td></tr>"
                    for k, v in rows if v not in (None, "", []))
    return f"<table>{cells}</table>"


class ModelLibrary(QWidget):
    detailsRequested = Signal(object)  # Path of an installed model: describe it (in a job)
    removeRequested = Signal(object)  # Path of an installed model

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Status", "Details"])
        self.tree.setRootIsDecorated(False)
        self.tree.currentItemChanged.connect(self._selected)
        self.details = QTextBrowser()
        self.details.setOpenExternalLinks(False)
        self.remove_button = QPushButton("Remove installed model…")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self._remove)
        self._card, self._shown_path = "", None
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.details, 1)
        layout.addWidget(self.remove_button)
        layout.addWidget(self.hint)
        self.refresh()

    def refresh(self) -> None:
        self.tree.clear()
        from cxrgan_desktop.engine.classifier.installed import bundled_classifiers

        installed = {m.name: m for m in zoo.installed_models()}
        bundled_classifiers = {p.stem for p in bundled_classifiers()}
        for card in zoo.known_cards():
            if card.kind != "generator":  # the demo classifier: its card, no generator file
                status = "bundled classifier (Synthesise tab)" if card.id in bundled_classifiers \
                    else "not installed"
                item = QTreeWidgetItem([card.name, status, card.kind])
                item.setData(0, Qt.ItemDataRole.UserRole, (card, None))
                self.tree.addTopLevelItem(item)
                continue
            model = installed.pop(card.id, None)
            status = ("bundled (read-only)" if model and model.bundled
                      else "installed" if model else "not installed")
            item = QTreeWidgetItem([card.name, status, card.source.get("record", "")])
            item.setData(0, Qt.ItemDataRole.UserRole, (card, model.path if model else None))
            self.tree.addTopLevelItem(item)
        for model in installed.values():
            item = QTreeWidgetItem([printable(model.name),
                                    "bundled (read-only)" if model.bundled else "installed",
                                    f"{model.size_bytes / 1e6:.1f} MB"])
            item.setData(0, Qt.ItemDataRole.UserRole, (None, model.path))
            self.tree.addTopLevelItem(item)
        for column in range(3):
            self.tree.resizeColumnToContents(column)
        self.details.setHtml("<p>Select a model to see its card.</p>")
        self.hint.setText(HINT + f"<p><small>Installed models live in {paths.models_dir()}"
                          "</small></p>")

    def show_details(self, path: Path, text: str) -> None:
        """Show a file's details, unless the user has moved on to another model meanwhile."""
        if path == self._shown_path:
            self.details.setHtml(self._card + text)

    def _selected(self, item: QTreeWidgetItem | None, _previous: object) -> None:
        card, path = item.data(0, Qt.ItemDataRole.UserRole) if item else (None, None)
        self._card = card_html(card) if card else ""
        self._shown_path = Path(path) if path is not None else None
        self.remove_button.setEnabled(path is not None and Path(path).parent == paths.models_dir())
        if path is None:
            self.details.setHtml(self._card)
        else:
            self.details.setHtml(self._card + "<p><i>Reading the file…</i></p>")
            self.detailsRequested.emit(Path(path))

    def _remove(self) -> None:
        item = self.tree.currentItem()
        if item is not None:
            self.removeRequested.emit(item.data(0, Qt.ItemDataRole.UserRole)[1])
