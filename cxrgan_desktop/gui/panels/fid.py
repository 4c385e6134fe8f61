"""The FID task panel: choose the two sides, measure, and keep every result with its
settings.

A side is written the way ``cxrgan fid`` takes it (a folder, a ``.npz`` statistics file, or
``model:NAME``), so the settings file, the history and the command line all speak one
language. The panel collects a request and shows results; the main window runs the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.settings import FIDPreferences
from cxrgan_desktop.gui.jobs.controls import JobControls
from cxrgan_desktop.gui.panels.fid_history_table import FIDHistoryTable
from cxrgan_desktop.metrics.fid_settings import RECOMMENDED_N, RESIZE_MODES
from cxrgan_desktop.store import zoo

KINDS = (("folder", "Folder of images"), ("stats", "Statistics file (.npz)"),
         ("model", "Model samples"))


@dataclass(frozen=True)
class FIDPanelRequest:
    real: str  # as `cxrgan fid` takes a side
    fake: str
    n: int
    seed: int
    resize: str
    batch_size: int
    reference_b: str = ""  # a second real set for the relative FD ("" = none)
    features: str = "inception"  # or classifier:NAME
    relative_split: bool = False  # relative FD between patient-wise halves of the reference


class SideChooser(QGroupBox):
    """One side: its kind, and a folder, a file or a model."""

    changed = Signal()

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.kind = QComboBox()
        for value, text in KINDS:
            self.kind.addItem(text, value)
        self.path = QLineEdit()
        self.path.setPlaceholderText("choose a folder…")
        self.browse = QPushButton("Browse…")
        self.model = QComboBox()
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.browse)
        row.addWidget(self.model, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.kind)
        layout.addLayout(row)
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.browse.clicked.connect(self._browse)
        self.path.textChanged.connect(self.changed)
        self.model.currentIndexChanged.connect(self.changed)
        self.refresh_models()
        self._kind_changed()

    def current_kind(self) -> str:
        return self.kind.currentData()

    def refresh_models(self) -> None:
        current = self.model.currentData()
        self.model.clear()
        for model in zoo.installed_models():
            self.model.addItem(model.name, model.name)
        index = self.model.findData(current) if current else 0
        self.model.setCurrentIndex(max(index, 0))

    def _kind_changed(self, *_args) -> None:
        kind = self.current_kind()
        is_model = kind == "model"
        self.path.setVisible(not is_model)
        self.browse.setVisible(not is_model)
        self.model.setVisible(is_model)
        self.path.setPlaceholderText("choose a folder of images…" if kind == "folder"
                                     else "choose a .npz statistics file…")
        self.changed.emit()

    def _browse(self) -> None:
        start = self.path.text() or str(Path.home())
        if self.current_kind() == "folder":
            chosen = QFileDialog.getExistingDirectory(self, self.title(), start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self.title(), start,
                                                    "FID statistics (*.npz);;All files (*)")
        if chosen:
            self.path.setText(chosen)

    def side_text(self) -> str:
        """The side as ``cxrgan fid`` takes it; "" when nothing is chosen."""
        if self.current_kind() == "model":
            name = self.model.currentData()
            return f"model:{name}" if name else ""
        return self.path.text().strip()

    def set_side_text(self, text: str) -> None:
        if text.startswith("model:"):
            self.kind.setCurrentIndex(self.kind.findData("model"))
            self.model.setCurrentIndex(max(self.model.findData(text[len("model:"):]), 0))
            return
        kind = "stats" if text.lower().endswith(".npz") else "folder"
        self.kind.setCurrentIndex(self.kind.findData(kind))
        self.path.setText(text)

    def problem(self) -> str:
        """Why this side cannot be measured yet ("" when it can)."""
        text = self.side_text()
        if not text:
            return "no model installed" if self.current_kind() == "model" else "not chosen"
        if self.current_kind() == "folder" and not Path(text).is_dir():
            return "no such folder"
        if self.current_kind() == "stats" and not Path(text).is_file():
            return "no such file"
        return ""


class FIDPanel(QWidget):
    fidRequested = Signal(object)  # FIDPanelRequest
    cancelRequested = Signal()
    locateWeightsRequested = Signal(str)  # the file the user picked
    downloadWeightsRequested = Signal()
    clearHistoryRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.real = SideChooser("Reference (real images)")
        self.fake = SideChooser("Measured (synthetic images)")
        self.fake.set_side_text("model:")
        self.relative = QCheckBox("Relative FD")
        self.relative.setToolTip(
            "Woodland et al. (2024): FD(reference, measured) / FD(reference, second real set), "
            "with an interval from half-samples. Near 1: as far from the reference as other real "
            "images are. Needs features on every side (folders, models, or .npz files saved "
            "with features).")
        self.relative_mode = QComboBox()
        self.relative_mode.addItem("against a second real set", "second")
        self.relative_mode.addItem("between patient-wise halves of the reference", "split")
        self.relative_mode.setToolTip(
            "Halves: the reference folder is split so that no patient is in both (ChestX-ray14 "
            "names give the patient; other names count as their own patient).")
        self.relative_mode.setVisible(False)
        self.reference_b = SideChooser("Second reference (real images, other patients)")
        self.reference_b.setVisible(False)
        self.n = QSpinBox()
        self.n.setRange(2, 1_000_000)
        self.n.setSingleStep(1024)
        self.n.setToolTip("Samples drawn from a model side. Use 2048 or more (the paper used "
                          "10,000); fewer give a biased FID that is not comparable.")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Latent seed of model sides: the same latents as Generate")
        self.resize_mode = QComboBox()
        for mode, description in RESIZE_MODES.items():
            self.resize_mode.addItem(mode, mode)
            self.resize_mode.setItemData(self.resize_mode.count() - 1, description,
                                         Qt.ItemDataRole.ToolTipRole)
        self.resize_mode.setToolTip("How images are brought to 299 px. antialias is the sound "
                                    "choice; pytorch-fid matches numbers published with it.")
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 512)
        self.features = QComboBox()
        self.features.setToolTip(
            "The feature network. Inception: the standard FID, comparable with published "
            "scores (same N, resize, reference). A pathology classifier: its penultimate "
            "features, trained on radiographs: FD, KID and precision/recall in what it reads "
            "in a chest image; not comparable with any Inception FID.")
        self.refresh_feature_networks()
        form = QFormLayout()
        form.addRow("Samples (model sides)", self.n)
        form.addRow("Seed", self.seed)
        form.addRow("Resize", self.resize_mode)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Features", self.features)

        self.size_warning = QLabel("")
        self.size_warning.setWordWrap(True)
        self.size_warning.setStyleSheet("color: #c77c00;")
        self.controls = JobControls("Compute FID", "Measure FID and KID between the two sides")
        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.weights_label = QLabel("")
        self.weights_label.setWordWrap(True)
        self.locate_button = QPushButton("Locate weights file…")
        self.download_button = QPushButton("Download weights")
        weights_row = QHBoxLayout()
        weights_row.addWidget(self.locate_button)
        weights_row.addWidget(self.download_button)
        self.table = FIDHistoryTable()
        self.copy_button = QPushButton("Copy rows")
        self.copy_button.setToolTip("Copy the selected results as tab-separated text (Ctrl+C)")
        self.clear_button = QPushButton("Clear history…")
        history_row = QHBoxLayout()
        history_row.addWidget(QLabel("History (hover a row for its settings)"), 1)
        history_row.addWidget(self.copy_button)
        history_row.addWidget(self.clear_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.real)
        layout.addWidget(self.fake)
        relative_row = QHBoxLayout()
        relative_row.addWidget(self.relative)
        relative_row.addWidget(self.relative_mode, 1)
        layout.addLayout(relative_row)
        layout.addWidget(self.reference_b)
        layout.addLayout(form)
        layout.addWidget(self.size_warning)
        layout.addWidget(self.controls)
        layout.addWidget(self.result_label)
        layout.addLayout(history_row)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.weights_label)
        layout.addLayout(weights_row)

        self.controls.run_button.clicked.connect(self.request_fid)
        self.controls.cancel_button.clicked.connect(self.cancelRequested)
        for side in (self.real, self.fake, self.reference_b):
            side.changed.connect(self._update_state)
        self.relative.toggled.connect(self._show_relative)
        self.relative_mode.currentIndexChanged.connect(self._show_relative)
        self.n.valueChanged.connect(self._update_state)
        self.locate_button.clicked.connect(self.locate_weights)
        self.download_button.clicked.connect(self.downloadWeightsRequested)
        self.copy_button.clicked.connect(self.table.copy_selection)
        self.clear_button.clicked.connect(self._confirm_clear)
        self._running = False
        self._update_state()

    # -- state ----------------------------------------------------------------------------
    def _update_state(self, *_args) -> None:
        uses_model = "model" in (self.real.current_kind(), self.fake.current_kind())
        self.n.setEnabled(uses_model and not self._running)
        self.seed.setEnabled(uses_model and not self._running)
        sides = [("Reference", self.real), ("Measured", self.fake)]
        if self.uses_second_reference():
            sides.append(("Second reference", self.reference_b))
        problems = [f"{name}: {side.problem()}" for name, side in sides if side.problem()]
        self.controls.run_button.setEnabled(not problems and not self._running)
        self.controls.run_button.setToolTip("; ".join(problems) or
                                            "Measure FID and KID between the two sides")
        if uses_model and self.n.value() < RECOMMENDED_N:
            self.size_warning.setText(
                f"⚠ {self.n.value()} samples: FID below {RECOMMENDED_N} images per side is "
                "biased upward and not comparable with published scores. Read KID beside it.")
        else:
            self.size_warning.setText("")

    def set_weights_status(self, path: Path | None, expected_name: str) -> None:
        if path is None:
            self.weights_label.setText(f"Inception weights: <b>not on this machine</b> "
                                       f"({expected_name}, about 91 MB)")
        else:
            self.weights_label.setText(f"Inception weights: {path}")
        self.download_button.setVisible(path is None)

    def set_running(self, running: bool) -> None:
        self._running = running
        self.controls.set_running(running, True)
        for widget in (self.real, self.fake, self.relative, self.relative_mode, self.reference_b,
                       self.resize_mode, self.batch_size, self.features,
                       self.locate_button, self.download_button, self.clear_button):
            widget.setEnabled(not running)
        self._update_state()

    def show_progress(self, fraction: float, message: str) -> None:
        self.controls.show_progress(fraction, message)

    def refresh_feature_networks(self) -> None:
        """Inception, then every installed classifier (the bundled demo one included)."""
        from cxrgan_desktop.engine.classifier.installed import installed_classifiers

        current = self.features.currentData()
        self.features.clear()
        self.features.addItem("Inception (standard FID)", "inception")
        for path in installed_classifiers():
            self.features.addItem(f"Classifier: {path.stem}", f"classifier:{path.stem}")
        self.features.setCurrentIndex(max(self.features.findData(current), 0) if current else 0)

    def uses_second_reference(self) -> bool:
        return self.relative.isChecked() and self.relative_mode.currentData() == "second"

    def _show_relative(self, *_args) -> None:
        self.relative_mode.setVisible(self.relative.isChecked())
        self.reference_b.setVisible(self.uses_second_reference())
        self._update_state()

    def uses_inception(self) -> bool:
        return self.features.currentData() == "inception"

    # -- requests -------------------------------------------------------------------------
    def request(self) -> FIDPanelRequest:
        return FIDPanelRequest(real=self.real.side_text(), fake=self.fake.side_text(),
                               n=self.n.value(), seed=self.seed.value(),
                               resize=self.resize_mode.currentData(),
                               batch_size=self.batch_size.value(),
                               reference_b=(self.reference_b.side_text()
                                            if self.uses_second_reference() else ""),
                               relative_split=(self.relative.isChecked()
                                               and not self.uses_second_reference()),
                               features=self.features.currentData() or "inception")

    def request_fid(self) -> None:
        if self.controls.run_button.isEnabled():
            self.fidRequested.emit(self.request())

    def locate_weights(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(
            self, "Locate the FID Inception weights", str(Path.home()),
            "PyTorch weights (*.pth);;All files (*)")
        if chosen:
            self.locateWeightsRequested.emit(chosen)

    def _confirm_clear(self) -> None:
        answer = QMessageBox.question(self, "Clear FID history",
                                      f"Remove all {len(self.table.records)} results from the "
                                      "history? This cannot be undone.")
        if answer == QMessageBox.StandardButton.Yes:
            self.clearHistoryRequested.emit()

    # -- results --------------------------------------------------------------------------
    def show_history(self, records: list[dict[str, Any]]) -> None:
        self.table.set_records(records)

    def show_result(self, record: dict[str, Any]) -> None:
        """The score in one line, a short caution when N is small; every warning in full in
        the tooltip (the dock is narrow and the history table needs the height)."""
        kid = record.get("kid")
        kid_text = (f"KID {kid['mean']:.4g} ± {kid['std']:.2g}" if kid else "KID n/a")
        sizes = [record["real"]["n"], record["fake"]["n"]]
        resize = record["settings"].get("resize", "resize not recorded")  # pytorch-fid files
        text = (f"<b style='font-size:15px'>FID {record['fid']:.3f}</b> &nbsp; {kid_text}"
                f" &nbsp; (N {sizes[0]} / {sizes[1]}, {resize})")
        prdc = record.get("prdc")
        if prdc:
            text += (f"<br>precision {prdc['precision']:.3f} &nbsp; recall {prdc['recall']:.3f}"
                     f" &nbsp; density {prdc['density']:.3f} &nbsp; coverage "
                     f"{prdc['coverage']:.3f} &nbsp; (k = {prdc['k']})")
        relative = record.get("relative")
        if relative:
            between = ("reference halves" if relative.get("split") else "real sets")
            text += (f"<br>relative FD <b>{relative['ratio']:.2f}</b> "
                     f"({100 * relative['level']:.0f} % {relative['ratio_low']:.2f} – "
                     f"{relative['ratio_high']:.2f}): FD {relative['fd_model']:.3f} to the "
                     f"model / {relative['fd_real']:.3f} between {between}")
        warnings = record.get("warnings", [])
        if any(n is not None and n < RECOMMENDED_N for n in sizes):
            text += (f"<br><span style='color:#c77c00'>⚠ N &lt; {RECOMMENDED_N}: not "
                     "comparable with published FIDs</span>")
        if warnings:
            text += f" <span style='color:#c77c00'>({len(warnings)} note(s): hover)</span>"
        self.result_label.setText(text)
        self.result_label.setToolTip("\n".join(f"⚠ {w}" for w in warnings))

    # -- settings -------------------------------------------------------------------------
    def load_settings(self, prefs: FIDPreferences) -> None:
        if prefs.real:
            self.real.set_side_text(prefs.real)
        if prefs.fake:
            self.fake.set_side_text(prefs.fake)
        if prefs.reference_b:
            self.reference_b.set_side_text(prefs.reference_b)
        self.relative_mode.setCurrentIndex(1 if prefs.relative_split else 0)
        self.relative.setChecked(prefs.relative)
        self.features.setCurrentIndex(max(self.features.findData(prefs.features), 0))
        self.n.setValue(prefs.n)
        self.seed.setValue(prefs.seed)
        self.resize_mode.setCurrentIndex(max(self.resize_mode.findData(prefs.resize), 0))
        self.batch_size.setValue(prefs.batch_size)

    def store_settings(self, prefs: FIDPreferences) -> None:
        request = self.request()
        prefs.real, prefs.fake = request.real, request.fake
        prefs.n, prefs.seed = request.n, request.seed
        prefs.resize, prefs.batch_size = request.resize, request.batch_size
        prefs.relative = self.relative.isChecked()
        prefs.relative_split = request.relative_split
        prefs.features = request.features
        prefs.reference_b = self.reference_b.side_text()
