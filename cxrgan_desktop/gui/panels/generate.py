"""The Generate task panel: which model, how many, which seed, where to run."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.jobs.controls import JobControls
from cxrgan_desktop.store import zoo

DEVICES = [("Automatic", "auto"), ("CPU", "cpu"), ("CUDA GPU", "cuda"), ("Apple MPS", "mps")]


@dataclass(frozen=True)
class GenerateRequest:
    model: str  # path of the weights file
    count: int
    seed: int
    device: str
    batch_size: int
    truncation: float = 1.0  # psi (engine/truncation.py); 1: none


class GeneratePanel(QWidget):
    generateRequested = Signal(object)  # GenerateRequest
    cancelRequested = Signal()
    openModelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_box = QComboBox()
        self.model_box.setToolTip("The generator to sample from (installed models and files "
                                  "you opened)")
        self.open_model = QPushButton("Open…")
        self.open_model.setToolTip("Open a weights file: a cxrgan .safetensors model or the "
                                   "paper's released .pth")
        self.open_model.clicked.connect(self.openModelRequested)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_box, 1)
        model_row.addWidget(self.open_model)

        self.count = QSpinBox(minimum=1, maximum=10_000, value=4)
        self.count.setToolTip("Number of images to generate")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed.setToolTip("Image i of seed s is always the same image")
        self.random_seed = QCheckBox("random")
        self.random_seed.setToolTip("Draw a new seed for every run (it is shown and recorded)")
        self.random_seed.toggled.connect(lambda on: self.seed.setEnabled(not on))
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        self.device = QComboBox()
        for label, value in DEVICES:
            self.device.addItem(label, value)
        self.batch_size = QSpinBox(minimum=1, maximum=256, value=2)
        self.batch_size.setToolTip("Images per forward pass: larger is faster on a GPU and "
                                   "uses more memory")

        self.truncation = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05,
                                         decimals=2, value=1.0)
        self.truncation.setToolTip(
            "Truncation psi: pulls each image towards the model's average image.\n"
            "1.00: no truncation, the model's full variety (the images a seed always gave).\n"
            "Lower: more typical, cleaner-looking images, but less diverse and less "
            "representative of the data the model learnt; 0.00: the same average image "
            "for every seed.\nRecorded in the manifest of every run.")

        form = QFormLayout()
        form.addRow("Model", model_row)
        form.addRow("Images", self.count)
        form.addRow("Seed", seed_row)
        form.addRow("Device", self.device)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Truncation", self.truncation)

        self.controls = JobControls("Generate", "Generate images (Ctrl+G)")
        self.generate_button, self.cancel_button = (self.controls.run_button,
                                                    self.controls.cancel_button)
        self.progress, self.status = self.controls.progress, self.controls.status
        self.generate_button.clicked.connect(self.request_generate)
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.no_model_hint = QLabel(
            "No model is installed. Open the paper's weights (Final_Full_Model.pth, from the "
            "medigan model zoo, Zenodo record 7047295) or a cxrgan model with <b>Open…</b>, "
            "or drop the file on the window. See the Models tab.")
        self.no_model_hint.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.no_model_hint)
        layout.addWidget(self.controls)
        layout.addStretch(1)
        self.refresh_models()

    def refresh_models(self, select: str = "") -> None:
        current = select or self.model_box.currentData() or ""
        self.model_box.clear()
        for model in zoo.installed_models():
            self.model_box.addItem(model.name, str(model.path))
        if current and self.model_box.findData(current) < 0 and Path(current).is_file():
            self.model_box.addItem(Path(current).name, current)  # a file opened, not installed
        index = self.model_box.findData(current) if current else 0
        self.model_box.setCurrentIndex(max(index, 0))
        has_model = self.model_box.count() > 0
        self.generate_button.setEnabled(has_model)
        self.no_model_hint.setVisible(not has_model)

    def set_device_available(self, value: str, available: bool) -> None:
        item = self.device.model().item(self.device.findData(value))
        item.setEnabled(available)
        if not available:
            item.setToolTip("not available on this machine")

    def set_running(self, running: bool) -> None:
        self.controls.set_running(running, self.model_box.count() > 0)
        for widget in (self.model_box, self.open_model, self.count, self.device, self.batch_size,
                       self.random_seed, self.truncation):
            widget.setEnabled(not running)
        self.seed.setEnabled(not running and not self.random_seed.isChecked())

    def show_progress(self, fraction: float, message: str) -> None:
        self.controls.show_progress(fraction, message)

    def load_settings(self, settings: Settings) -> None:
        self.count.setValue(settings.generate_count)
        self.seed.setValue(settings.generate_seed)
        self.random_seed.setChecked(settings.generate_random_seed)
        self.seed.setEnabled(not settings.generate_random_seed)
        self.batch_size.setValue(settings.generate_batch_size)
        self.truncation.setValue(settings.generate_truncation)  # clamped to 0..1
        index = self.device.findData(settings.device)
        self.device.setCurrentIndex(max(index, 0))
        if settings.last_model:
            self.refresh_models(select=settings.last_model)

    def store_settings(self, settings: Settings) -> None:
        settings.generate_count = self.count.value()
        settings.generate_seed = self.seed.value()
        settings.generate_random_seed = self.random_seed.isChecked()
        settings.generate_batch_size = self.batch_size.value()
        settings.generate_truncation = self.truncation.value()
        settings.device = self.device.currentData()
        settings.last_model = self.model_box.currentData() or ""

    def request_generate(self) -> None:
        if self.model_box.count() == 0:
            return
        if self.random_seed.isChecked():
            self.seed.setValue(random.SystemRandom().randrange(0, 2**31 - 1))
        self.generateRequested.emit(GenerateRequest(
            model=self.model_box.currentData(), count=self.count.value(),
            seed=self.seed.value(), device=self.device.currentData(),
            batch_size=self.batch_size.value(), truncation=self.truncation.value()))
