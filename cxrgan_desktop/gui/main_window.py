"""The main window. For now: the model library and what to do next; the viewer, generation
panel and gallery arrive with the viewer issue, in the central area this window reserves."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop import __version__, paths, zoo

CITATION = ("Segal B, Rubin DM, Rubin G, Pantanowitz A. Evaluating the Clinical Realism of "
            "Synthetic Chest X-Rays Generated Using Progressively Growing GANs. "
            "SN Computer Science 2, 321 (2021).")


class ModelLibrary(QTreeWidget):
    """Known models (cards) and the user's installed models."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Model", "Status", "Details"])
        self.setRootIsDecorated(False)
        self.refresh()

    def refresh(self) -> None:
        self.clear()
        installed = {m.name: m for m in zoo.installed_models()}
        for card in zoo.known_cards():
            status = "installed" if card.id in installed else "not installed"
            item = QTreeWidgetItem([card.name, status, card.source.get("record", "")])
            item.setToolTip(0, card.description)
            self.addTopLevelItem(item)
        for model in installed.values():
            if model.card is None:
                self.addTopLevelItem(QTreeWidgetItem(
                    [model.name, "installed", f"{model.size_bytes / 1e6:.1f} MB  {model.path}"]))
        for column in range(3):
            self.resizeColumnToContents(column)


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(f"cxrgan-desktop {__version__}")
        self.resize(1200, 760)
        self.library = ModelLibrary()
        self.welcome = QLabel(self._welcome_text())
        self.welcome.setObjectName("welcome")
        self.welcome.setWordWrap(True)
        self.welcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.welcome.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.welcome.setMargin(16)

        side = QWidget()
        layout = QVBoxLayout(side)
        layout.addWidget(QLabel("<b>Models</b>"))
        layout.addWidget(self.library)
        splitter = QSplitter()
        splitter.addWidget(side)
        splitter.addWidget(self.welcome)
        splitter.setSizes([520, 680])
        self.setCentralWidget(splitter)
        self._build_menus()
        self.statusBar().showMessage(self._status_text())

    def _welcome_text(self) -> str:
        has_model = bool(zoo.installed_models())
        first = ("A model is installed: render images with <code>cxrgan generate --n 8 "
                 "--out synth/</code>." if has_model else
                 "No model is installed yet. Import the paper's released generator "
                 "(medigan / Zenodo record 7047295, file <code>Final_Full_Model.pth</code>) "
                 "with <code>cxrgan import-model Final_Full_Model.pth --name "
                 "segal2020-pggan-cxr14</code>.")
        return (
            "<h2>cxrgan-desktop</h2>"
            "<p>Synthetic chest radiographs with Progressive Growing GANs, after Segal et al. "
            "(2020).</p>"
            f"<p>{first}</p>"
            "<p>The image viewer with window/level, the Generate panel and the gallery arrive "
            "in a coming version. Everything the application does is available now from the "
            "command line: <code>cxrgan --help</code>.</p>"
            "<p>Procedural test radiographs with exact labels: <code>cxrgan phantom --n 16 "
            "--size 512 --out phantoms/</code>.</p>"
            f"<p><small>Models folder: {paths.models_dir()}</small></p>")

    def _status_text(self) -> str:
        count = len(zoo.installed_models())
        return f"{count} model(s) installed  |  models folder: {paths.models_dir()}"

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        refresh = QAction("&Refresh model list", self)
        refresh.setShortcut(QKeySequence.StandardKey.Refresh)
        refresh.triggered.connect(self.library.refresh)
        file_menu.addAction(refresh)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        help_menu = self.menuBar().addMenu("&Help")
        about = QAction("&About cxrgan-desktop", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)

    def show_about(self) -> None:
        QMessageBox.about(self, "About cxrgan-desktop",
                          f"<b>cxrgan-desktop {__version__}</b><p>MIT licence.</p>"
                          f"<p>Please cite: {CITATION}</p>"
                          "<p>Qt for Python (LGPLv3), PyTorch (BSD), pyqtgraph (MIT).</p>")
