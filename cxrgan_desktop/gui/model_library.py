"""The Models tab: known models (cards) and installed ones, with what to do next."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from cxrgan_desktop import paths, zoo


class ModelLibrary(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Model", "Status", "Details"])
        self.tree.setRootIsDecorated(False)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.hint)
        self.refresh()

    def refresh(self) -> None:
        self.tree.clear()
        installed = {m.name: m for m in zoo.installed_models()}
        for card in zoo.known_cards():
            status = "installed" if card.id in installed else "not installed"
            item = QTreeWidgetItem([card.name, status, card.source.get("record", "")])
            item.setToolTip(0, card.description)
            self.tree.addTopLevelItem(item)
        for model in installed.values():
            if model.card is None:
                self.tree.addTopLevelItem(QTreeWidgetItem(
                    [model.name, "installed", f"{model.size_bytes / 1e6:.1f} MB  {model.path}"]))
        for column in range(3):
            self.tree.resizeColumnToContents(column)
        self.hint.setText(
            "<p>The paper's generator: download <code>00020_PGGAN_CHEST_XRAY.zip</code> "
            "(medigan model zoo, Zenodo record 7047295), then use <b>File ▸ Open model</b> "
            "on <code>Final_Full_Model.pth</code>, or install it once with<br>"
            "<code>cxrgan import-model Final_Full_Model.pth --name segal2020-pggan-cxr14"
            "</code>.</p>"
            f"<p><small>Installed models live in {paths.models_dir()}</small></p>")
