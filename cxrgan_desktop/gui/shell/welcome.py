"""The first-run welcome: what the application is, and the three ways to get a generator
(download the paper's, import a file, train one), with the download's progress and the
SHA-256 of what arrived.

Shown at start-up while no model of the user's own is installed (unless the user turned it
off); Help ▸ Welcome opens it at any time. The bundled demo model is usable meanwhile (the
Generate tab opens on it); the welcome says what it is, so nobody mistakes its 64 px phantoms
for the paper's radiographs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.gui.jobs.controls import JobControls
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.store import zoo

PAPER_CARD = "segal2020-pggan-cxr14"
MODEL_FILTER = "Model files (*.pth *.pt *.ckpt *.safetensors);;All files (*)"


def _demo_html(demo: list[zoo.InstalledModel]) -> str:
    if not demo:
        return ("<b>No generator is installed yet</b>, and this build ships no demo model: "
                "choose one of the ways below.")
    model = demo[0]
    what = model.card.name if model.card is not None else model.name
    return (f"<b>No generator of your own is installed yet.</b> The bundled demo model "
            f"<b>{model.name}</b> ({what}) works now, offline: the Generate tab is set to it "
            "and the Synthesise tab to its demo classifier. It was trained on a 2-core CPU on "
            "the procedural chest phantom, at <b>64 px: phantom data, not clinical</b>, for "
            "trying the application out (its card is in the Models tab). For the paper's "
            "1024 px radiographs, get its generator below.")


def _intro_html(installed: list[zoo.InstalledModel], card: zoo.ModelCard | None) -> str:
    mine = [m for m in installed if not m.bundled]
    models = (f"Installed models: <b>{', '.join(m.name for m in mine)}</b>." if mine
              else _demo_html([m for m in installed if m.bundled]))
    paper = ""
    if card is not None:
        paper = (f"<p><b>The paper's generator</b>: {card.name}, {card.licence} licence, from "
                 f"the {card.source.get('distributor', '')} ({card.source.get('record', '')}, "
                 f"file {card.source.get('file', '')}). No checksum is published, so its "
                 "SHA-256 is shown and recorded when it is installed.<br>"
                 f"<i>Please cite: {card.citation}</i></p>")
    without = ("<p>Without a model you can still open, window and convert radiographs "
               "(Ctrl+O), make phantom images (<code>cxrgan phantom</code>) and analyse reader "
               "studies.</p>" if not installed else "")
    return (
        "<h2>Welcome to cxrgan-desktop</h2>"
        "<p>Synthetic chest radiographs from Progressive Growing GANs: generate and view them "
        "with DICOM window/level, synthesise chosen findings (LCO), measure FID and KID, run "
        "blinded reader studies, and test classifiers trained on synthetic data. Every "
        "action has a <code>cxrgan</code> command-line twin.</p>"
        f"<p>{models}</p>{paper}{without}")


class WelcomeDialog(QDialog):
    installed = Signal(object)  # model_install.Installed
    trainRequested = Signal()

    def __init__(self, show_at_start: bool, parent: QWidget | None = None,
                 download_url: str | None = None) -> None:
        """``download_url``: a mirror for the paper's archive (tests serve one locally)."""
        super().__init__(parent)
        self.setWindowTitle("Welcome to cxrgan-desktop")
        self.download_url = download_url
        self.runner: JobRunner | None = None
        cards = {card.id: card for card in zoo.known_cards()}
        self.card = cards.get(PAPER_CARD)
        self.intro = QLabel(_intro_html(zoo.installed_models(), self.card))
        self.intro.setWordWrap(True)
        self.intro.setOpenExternalLinks(False)
        self.download_button = QPushButton("Download the paper's generator…")
        self.download_button.setToolTip("Fetch the medigan archive from Zenodo, unpack "
                                        "Final_Full_Model.pth, check it and install it")
        self.download_button.setEnabled(self.card is not None)
        self.import_button = QPushButton("Import a weights file…")
        self.import_button.setToolTip("The paper's Final_Full_Model.pth (any container) or a "
                                      "cxrgan .safetensors model; nothing in it is executed")
        self.train_button = QPushButton("Train on my images…")
        self.train_button.setToolTip("The Train tab: progressive training or fine-tuning")
        buttons = QHBoxLayout()
        for button in (self.download_button, self.import_button, self.train_button):
            buttons.addWidget(button)
        self.controls = JobControls("", "")
        self.controls.run_button.hide()
        self.controls.hide()  # shown while a download or import runs
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.show_at_start = QCheckBox("Show this window at start-up while no model of my own "
                                       "is installed")
        self.show_at_start.setChecked(show_at_start)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        foot = QHBoxLayout()
        foot.addWidget(self.show_at_start, 1)
        foot.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(buttons)
        layout.addWidget(self.controls)
        layout.addWidget(self.result)
        layout.addLayout(foot)
        self.download_button.clicked.connect(self.download)
        self.import_button.clicked.connect(self.choose_file)
        self.train_button.clicked.connect(self._train)
        self.controls.cancel_button.clicked.connect(self.cancel)
        self.resize(720, 480)

    # -- the three ways -----------------------------------------------------------------------
    def download(self) -> None:
        from cxrgan_desktop.store.install import fetch_known_model

        url = self.download_url
        self._run(lambda progress, cancel: fetch_known_model(
            PAPER_CARD, url=url, progress=progress, cancel=cancel), "Downloading…")

    def choose_file(self) -> None:
        file, _ = QFileDialog.getOpenFileName(self, "Import a generator", str(Path.home()),
                                              MODEL_FILTER)
        if file:
            self.import_file(Path(file))

    def import_file(self, path: Path) -> None:
        from cxrgan_desktop.store.install import install_model

        self._run(lambda progress, cancel: install_model(path), f"Checking {path.name}…")

    def _train(self) -> None:
        self.trainRequested.emit()
        self.close()

    # -- the job ------------------------------------------------------------------------------
    def _run(self, job, message: str) -> None:
        if self.is_running():
            return
        self.runner = JobRunner(job, "install a model", self)
        self.runner.progress.connect(self.controls.show_progress)
        self.runner.succeeded.connect(self._installed)
        self.runner.failed.connect(lambda text: self.result.setText(
            f"<span style='color:#b02020'><b>Not installed:</b> {text}</span>"))
        self.runner.cancelled.connect(lambda: self.result.setText("Cancelled; nothing was "
                                                                  "installed."))
        self.runner.done.connect(lambda: self._set_running(False))
        self._set_running(True)
        self.result.setText(message)
        self.runner.start()

    def _set_running(self, running: bool) -> None:
        self.controls.set_running(running, False)
        self.controls.setVisible(running)
        for button in (self.download_button, self.import_button, self.train_button):
            button.setEnabled(not running and (button is not self.download_button
                                               or self.card is not None))

    def is_running(self) -> bool:
        return self.runner is not None and self.runner.is_running()

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def _installed(self, installed) -> None:
        self.result.setText(f"<b>Installed {installed.name}</b> ({installed.description}).<br>"
                            f"SHA-256 of the file: <code>{installed.sha256}</code> (recorded "
                            "in the model; note it for your methods section).")
        self.intro.setText(_intro_html(zoo.installed_models(), self.card))
        self.installed.emit(installed)

    def closeEvent(self, event) -> None:
        if self.is_running():
            self.runner.cancel()
            self.runner.wait(10_000)
        super().closeEvent(event)
