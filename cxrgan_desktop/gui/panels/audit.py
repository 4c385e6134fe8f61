"""The Audit tab: is a generated radiograph too close to a training patient's?

The form sets up ``cxrgan audit`` (the same options, written the same way: a synthetic side
is a folder or ``model:NAME``); the results are the audit folder read back with
:func:`~cxrgan_desktop.tasks.audit_file.read_audit`, whether this tab ran it or "Open
audit..." found one. Choosing a row asks for the synthetic image and its nearest training
image in the chosen space (the controller reads them in a worker and shows them side by side
in the window's centre). The panel collects requests and shows results; the controller runs
the jobs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.settings import AuditPreferences
from cxrgan_desktop.gui.jobs.controls import JobControls
from cxrgan_desktop.gui.panels.audit_table import SPACE_NAMES, AuditTable, percent
from cxrgan_desktop.store import zoo
from cxrgan_desktop.tasks.audit_file import DEFAULT_ALPHA, AuditReport, AuditRow

DEFAULT_ALPHA_PERCENT = 100 * DEFAULT_ALPHA  # the form takes alpha in percent


@dataclass(frozen=True)
class AuditRequest:
    """One audit as the form describes it; the controller turns it into ``AuditOptions``."""

    train_dir: str
    out_dir: str
    synthetic: str  # a folder or model:NAME
    held_out: str
    labels_csv: str = ""  # "" = none
    n: int | None = None  # None: every image of the folder
    seed: int = 0
    spaces: tuple[str, ...] = ("pixels", "reid")
    reid_model: str = ""
    k: int = 5
    alpha: float = DEFAULT_ALPHA  # a fraction


class PathField(QWidget):
    """A line to type a path in, and Browse... for a folder or a file."""

    changed = Signal()

    def __init__(self, placeholder: str, folder: bool = True, file_filter: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder, self.file_filter = folder, file_filter
        self.edit = QLineEdit()
        self.edit.setPlaceholderText(placeholder)
        self.browse = QPushButton("Browse…")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.edit, 1)
        layout.addWidget(self.browse)
        self.browse.clicked.connect(self._browse)
        self.edit.textChanged.connect(self.changed)

    def text(self) -> str:
        return self.edit.text().strip()

    def set_text(self, text: str) -> None:
        self.edit.setText(text)

    def _browse(self) -> None:
        start = self.text() or str(Path.home())
        if self.folder:
            chosen = QFileDialog.getExistingDirectory(self, self.edit.placeholderText(), start)
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, self.edit.placeholderText(), start,
                                                    self.file_filter)
        if chosen:
            self.set_text(chosen)


def installed_reid_models() -> list[str]:
    """Names of the installed re-identification models (the audit resolves a name there;
    any other model file is typed or browsed for)."""
    from cxrgan_desktop.engine.reid.installed import installed_reids

    return [path.stem for path in installed_reids()]


class AuditPanel(QWidget):
    auditRequested = Signal(object)  # AuditRequest
    cancelRequested = Signal()
    openAuditRequested = Signal(str)  # an audit folder or its audit.csv
    pairRequested = Signal(object, str)  # AuditRow, space
    savePairRequested = Signal()
    openSheetRequested = Signal()
    copySheetRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: AuditReport | None = None
        self._running = False
        # the form folds away while results are read: the dock is short, the table needs rows
        self.setup_toggle = QToolButton()
        self.setup_toggle.setText("Set up an audit")
        self.setup_toggle.setCheckable(True)
        self.setup_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.setup_toggle.setStyleSheet("QToolButton { border: none; font-weight: bold; }")
        self.setup = QWidget()
        setup = QVBoxLayout(self.setup)
        setup.setContentsMargins(0, 0, 0, 0)
        setup.addWidget(self._sources_box())
        setup.addWidget(self._method_box())
        self.out_dir = PathField("audit folder to write…")
        out_row = QFormLayout()
        out_row.addRow("Output folder", self.out_dir)
        setup.addLayout(out_row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.setup_toggle)
        layout.addWidget(self.setup)
        self.controls = JobControls("Run audit", "Find each synthetic image's nearest training "
                                    "images and flag those closer than unseen patients are")
        layout.addWidget(self.controls)
        layout.addWidget(self._results_box(), 1)

        self.setup_toggle.toggled.connect(self.set_setup_visible)
        self.set_setup_visible(True)
        self.controls.run_button.clicked.connect(self.request_audit)
        self.controls.cancel_button.clicked.connect(self.cancelRequested)
        for widget in (self.train_dir, self.synthetic_path, self.held_out, self.out_dir,
                       self.labels_csv):
            widget.changed.connect(self._update_state)
        for box in (self.use_pixels, self.use_reid, self.use_inception):
            box.toggled.connect(self._update_state)
        self.synthetic_kind.currentIndexChanged.connect(self._kind_changed)
        self.synthetic_model.currentIndexChanged.connect(self._update_state)
        self.reid_model.currentTextChanged.connect(self._update_state)
        self.reid_browse.clicked.connect(self._browse_reid)
        self.refresh_models()
        self.set_inception_available(False)
        self._kind_changed()

    # -- layout ----------------------------------------------------------------------------
    def _sources_box(self) -> QGroupBox:
        box = QGroupBox("Images")
        self.train_dir = PathField("training images (searched recursively)…")
        self.labels_csv = PathField("optional: Data_Entry CSV with patient ids…", folder=False,
                                    file_filter="CSV files (*.csv);;All files (*)")
        self.synthetic_kind = QComboBox()
        self.synthetic_kind.addItem("Folder of images", "folder")
        self.synthetic_kind.addItem("Installed model", "model")
        self.synthetic_path = PathField("folder of synthetic images…")
        self.synthetic_model = QComboBox()
        self.n = QSpinBox()
        self.n.setRange(0, 1_000_000)
        self.n.setSpecialValueText("all")
        self.n.setToolTip("Images to generate from the model, or the first N of the folder "
                          "(all: every image)")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Latent seed for a model: the same latents as Generate")
        self.held_out = PathField("held-out real images, or a training run folder…")
        self.held_out.setToolTip(
            "Real images of patients the generator never saw: a folder, or the training run "
            "folder whose held_out.json lists them. They calibrate how close is too close.")
        numbers = QHBoxLayout()
        numbers.addWidget(QLabel("N"))
        numbers.addWidget(self.n, 1)
        numbers.addWidget(QLabel("Seed"))
        numbers.addWidget(self.seed, 1)
        synthetic = QVBoxLayout()
        synthetic.addWidget(self.synthetic_kind)
        synthetic.addWidget(self.synthetic_path)
        synthetic.addWidget(self.synthetic_model)
        synthetic.addLayout(numbers)
        form = QFormLayout(box)
        form.addRow("Training", self.train_dir)
        form.addRow("Labels", self.labels_csv)
        form.addRow("Synthetic", synthetic)
        form.addRow("Held-out", self.held_out)
        return box

    def _method_box(self) -> QGroupBox:
        box = QGroupBox("Feature spaces and threshold")
        self.use_pixels = QCheckBox("Pixels (normalised cross-correlation, 32 px)")
        self.use_reid = QCheckBox("Re-identification model")
        self.use_inception = QCheckBox("Inception")
        self.reid_model = QComboBox()
        self.reid_model.setEditable(True)
        self.reid_model.lineEdit().setPlaceholderText("installed name or model file…")
        self.reid_browse = QPushButton("Browse…")
        reid_row = QHBoxLayout()
        reid_row.addWidget(self.use_reid)
        reid_row.addWidget(self.reid_model, 1)
        reid_row.addWidget(self.reid_browse)
        self.k = QSpinBox()
        self.k.setRange(1, 100)
        self.k.setValue(5)
        self.k.setToolTip("Nearest training images kept per synthetic image and space")
        self.alpha = QDoubleSpinBox()
        self.alpha.setRange(0.0, 50.0)
        self.alpha.setDecimals(3)
        self.alpha.setSingleStep(0.1)
        self.alpha.setSuffix(" %")
        self.alpha.setValue(DEFAULT_ALPHA_PERCENT)
        self.alpha.setToolTip(
            "Flag a synthetic image when at most this share of held-out real patients is as "
            "close to the training set as it is (default 0.1 %)")
        numbers = QHBoxLayout()
        numbers.addWidget(QLabel("k"))
        numbers.addWidget(self.k, 1)
        numbers.addWidget(QLabel("Alpha"))
        numbers.addWidget(self.alpha, 1)
        layout = QVBoxLayout(box)
        layout.addWidget(self.use_pixels)
        layout.addLayout(reid_row)
        layout.addWidget(self.use_inception)
        layout.addLayout(numbers)
        return box

    def _results_box(self) -> QGroupBox:
        box = QGroupBox("Results")
        self.open_button = QPushButton("Open audit…")
        self.open_button.setToolTip("Show an audit folder written by `cxrgan audit` or this tab")
        self.summary = QLabel("No audit shown.")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pair_space = QComboBox()
        self.pair_space.setToolTip("The space whose nearest training image a row opens")
        self.table = AuditTable()
        self.save_pair_button = QPushButton("Save pair…")
        self.save_pair_button.setToolTip("Save the synthetic image, its nearest training image "
                                         "and their difference as shown (8-bit PNG), and the "
                                         "three side by side")
        self.sheet_button = QPushButton("Open contact sheet")
        self.copy_sheet_button = QPushButton("Copy contact sheet")
        self.copy_sheet_button.setToolTip("Copy the contact sheet file to the clipboard, to "
                                          "paste into a file manager or a document")
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addStretch(1)
        top.addWidget(QLabel("Pair in"))
        top.addWidget(self.pair_space)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_pair_button)
        buttons.addWidget(self.sheet_button)
        buttons.addWidget(self.copy_sheet_button)
        layout = QVBoxLayout(box)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        self.open_button.clicked.connect(self.choose_audit)
        self.pair_space.currentIndexChanged.connect(self._space_changed)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        self.save_pair_button.clicked.connect(self.savePairRequested)
        self.sheet_button.clicked.connect(self.openSheetRequested)
        self.copy_sheet_button.clicked.connect(self.copySheetRequested)
        self.set_pair_shown(False)
        self._show_sheet_buttons()
        return box

    # -- state -----------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """Reread the installed generators and re-identification models into the lists."""
        current = self.synthetic_model.currentData()
        self.synthetic_model.clear()
        for model in zoo.installed_models():
            self.synthetic_model.addItem(model.name, model.name)
        index = self.synthetic_model.findData(current) if current else 0
        self.synthetic_model.setCurrentIndex(max(index, 0))
        typed = self.reid_model.currentText()
        self.reid_model.clear()
        for name in installed_reid_models():
            self.reid_model.addItem(name, name)
        self.reid_model.setEditText(typed or self.reid_model.itemText(0))

    def set_inception_available(self, available: bool) -> None:
        """Inception is offered only when its weights are on this machine."""
        self.use_inception.setEnabled(available and not self._running)
        if not available:
            self.use_inception.setChecked(False)
        self.use_inception.setToolTip(
            "Inception-v3 pool features (the FID network)" if available else
            "Needs the FID Inception weights (the FID tab downloads or locates them)")

    def set_setup_visible(self, visible: bool) -> None:
        self.setup.setVisible(visible)
        self.setup_toggle.setChecked(visible)
        self.setup_toggle.setArrowType(Qt.ArrowType.DownArrow if visible
                                       else Qt.ArrowType.RightArrow)

    def _kind_changed(self, *_args) -> None:
        is_model = self.synthetic_kind.currentData() == "model"
        self.synthetic_path.setVisible(not is_model)
        self.synthetic_model.setVisible(is_model)
        self.seed.setEnabled(is_model and not self._running)
        self.n.setSpecialValueText("" if is_model else "all")
        self.n.setMinimum(1 if is_model else 0)
        self._update_state()

    def spaces(self) -> tuple[str, ...]:
        chosen = [(self.use_pixels, "pixels"), (self.use_reid, "reid"),
                  (self.use_inception, "inception")]
        return tuple(name for box, name in chosen if box.isChecked())

    def synthetic_text(self) -> str:
        if self.synthetic_kind.currentData() == "model":
            name = self.synthetic_model.currentData()
            return f"model:{name}" if name else ""
        return self.synthetic_path.text()

    def problems(self) -> list[str]:
        """Why the audit cannot run yet (empty when it can)."""
        out = []
        if not Path(self.train_dir.text() or "\0").is_dir():
            out.append("Training: choose the folder of training images")
        if self.labels_csv.text() and not Path(self.labels_csv.text()).is_file():
            out.append("Labels: no such file")
        synthetic = self.synthetic_text()
        if not synthetic:
            out.append("Synthetic: " + ("no model installed"
                                        if self.synthetic_kind.currentData() == "model"
                                        else "choose a folder"))
        elif not synthetic.startswith("model:") and not Path(synthetic).is_dir():
            out.append("Synthetic: no such folder")
        if not Path(self.held_out.text() or "\0").is_dir():
            out.append("Held-out: choose real images never trained on (a folder or run folder)")
        if not self.spaces():
            out.append("Spaces: tick at least one")
        if self.use_reid.isChecked() and not self.reid_model.currentText().strip():
            out.append("Re-identification: choose a model")
        if not self.out_dir.text():
            out.append("Output folder: choose where the audit is written")
        return out

    def _update_state(self, *_args) -> None:
        problems = self.problems()
        self.controls.run_button.setEnabled(not problems and not self._running)
        self.controls.run_button.setToolTip("\n".join(problems) or
                                            "Run the memorisation audit")
        self.reid_model.setEnabled(self.use_reid.isChecked() and not self._running)
        self.reid_browse.setEnabled(self.use_reid.isChecked() and not self._running)

    def set_running(self, running: bool) -> None:
        self._running = running
        self.controls.set_running(running, True)
        for widget in (self.train_dir, self.labels_csv, self.synthetic_kind, self.synthetic_path,
                       self.synthetic_model, self.n, self.held_out, self.use_pixels,
                       self.use_reid, self.k, self.alpha, self.out_dir, self.open_button):
            widget.setEnabled(not running)
        self.seed.setEnabled(not running and self.synthetic_kind.currentData() == "model")
        self.use_inception.setEnabled(not running and "Needs" not in
                                      self.use_inception.toolTip())
        self._update_state()

    def show_progress(self, fraction: float, message: str) -> None:
        self.controls.show_progress(fraction, message)

    def _browse_reid(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(
            self, "Re-identification model", str(Path.home()),
            "Model files (*.safetensors *.pt *.pth);;All files (*)")
        if chosen:
            self.reid_model.setEditText(chosen)

    # -- requests --------------------------------------------------------------------------
    def request(self) -> AuditRequest:
        is_model = self.synthetic_kind.currentData() == "model"
        return AuditRequest(
            train_dir=self.train_dir.text(), out_dir=self.out_dir.text(),
            synthetic=self.synthetic_text(), held_out=self.held_out.text(),
            labels_csv=self.labels_csv.text(), n=self.n.value() or None,
            seed=self.seed.value() if is_model else 0, spaces=self.spaces(),
            reid_model=self.reid_model.currentText().strip() if self.use_reid.isChecked()
            else "", k=self.k.value(), alpha=self.alpha.value() / 100.0)

    def request_audit(self) -> None:
        if self.controls.run_button.isEnabled():
            self.auditRequested.emit(self.request())

    def choose_audit(self) -> None:
        start = str(self.report.folder) if self.report else (self.out_dir.text()
                                                             or str(Path.home()))
        chosen = QFileDialog.getExistingDirectory(self, "Open an audit folder", start)
        if chosen:
            self.openAuditRequested.emit(chosen)

    # -- results ---------------------------------------------------------------------------
    def show_report(self, report: AuditReport) -> None:
        """The summary line and the table (most at risk first, as the CSV ranks them)."""
        self.report = report
        self.pair_space.blockSignals(True)
        chosen = self.pair_space.currentData()
        self.pair_space.clear()
        for space in report.spaces:
            self.pair_space.addItem(SPACE_NAMES.get(space, space), space)
        self.pair_space.setCurrentIndex(max(self.pair_space.findData(chosen), 0))
        self.pair_space.blockSignals(False)
        self.table.audit_model.space = self.pair_space.currentData() or ""
        self.table.set_report(report)
        self.summary.setText(summary_html(report))
        self.summary.setToolTip(str(report.folder))
        self._show_sheet_buttons()
        self.set_setup_visible(False)

    def current_space(self) -> str:
        return self.pair_space.currentData() or ""

    def current_row(self) -> AuditRow | None:
        return self.table.current_row()

    def contact_sheet(self) -> Path | None:
        """The contact sheet the shown audit wrote (PNG, else PDF), if it is there."""
        if self.report is None:
            return None
        for name in ("contact_sheet.png", "contact_sheet.pdf"):
            if (self.report.folder / name).is_file():
                return self.report.folder / name
        return None

    def _show_sheet_buttons(self) -> None:
        sheet = self.contact_sheet()
        for button in (self.sheet_button, self.copy_sheet_button):
            button.setEnabled(sheet is not None)
        self.sheet_button.setToolTip(str(sheet) if sheet else "The audit wrote no contact sheet")

    def set_pair_shown(self, shown: bool) -> None:
        self.save_pair_button.setEnabled(shown)

    def _row_changed(self, current, _previous=None) -> None:
        row = self.table.audit_model.row_at(current.row()) if current.isValid() else None
        if row is not None and self.current_space():
            self.pairRequested.emit(row, self.current_space())

    def _space_changed(self, *_args) -> None:
        self.table.audit_model.set_space(self.current_space())
        row = self.current_row()
        if row is not None:
            self.pairRequested.emit(row, self.current_space())

    # -- settings --------------------------------------------------------------------------
    def load_settings(self, prefs: AuditPreferences) -> None:
        self.train_dir.set_text(prefs.train_dir)
        self.labels_csv.set_text(prefs.labels_csv)
        if prefs.synthetic.startswith("model:"):
            self.synthetic_kind.setCurrentIndex(self.synthetic_kind.findData("model"))
            index = self.synthetic_model.findData(prefs.synthetic[len("model:"):])
            self.synthetic_model.setCurrentIndex(max(index, 0))
        else:
            self.synthetic_kind.setCurrentIndex(self.synthetic_kind.findData("folder"))
            self.synthetic_path.set_text(prefs.synthetic)
        self.n.setValue(prefs.n)
        self.seed.setValue(prefs.seed)
        self.held_out.set_text(prefs.held_out)
        self.use_pixels.setChecked("pixels" in prefs.spaces)
        self.use_reid.setChecked("reid" in prefs.spaces)
        self.use_inception.setChecked("inception" in prefs.spaces
                                      and self.use_inception.isEnabled())
        self.reid_model.setEditText(prefs.reid_model)
        self.k.setValue(prefs.k)
        self.alpha.setValue(prefs.alpha_percent)
        self.out_dir.set_text(prefs.out_dir)
        self._update_state()

    def store_settings(self, prefs: AuditPreferences) -> None:
        prefs.train_dir, prefs.labels_csv = self.train_dir.text(), self.labels_csv.text()
        prefs.synthetic = self.synthetic_text()
        prefs.n, prefs.seed = self.n.value(), self.seed.value()
        prefs.held_out = self.held_out.text()
        prefs.spaces = list(self.spaces())
        prefs.reid_model = self.reid_model.currentText().strip()
        prefs.k, prefs.alpha_percent = self.k.value(), self.alpha.value()
        prefs.out_dir = self.out_dir.text()
        if self.report is not None:
            prefs.last_audit = str(self.report.folder)


def summary_html(report: AuditReport) -> str:
    """How many flagged of how many, the distinct training patients the flagged images
    matched (in the spaces that flagged them), and each space's threshold."""
    total, flagged = len(report.rows), report.flagged
    patients = {match.patient for row in flagged for match in row.matches.values()
                if match.flagged}
    nearest = {match.patient for row in report.rows for match in row.matches.values()}
    share = f" ({100 * len(flagged) / total:.1f} %)" if total else ""
    colour = "#d6503c" if flagged else "#3c9d5a"
    text = (f"<b style='color:{colour}'>{len(flagged)} of {total} flagged</b>{share}, "
            f"matching {len(patients)} distinct training patient(s); the nearest training "
            f"images of all {total} come from {len(nearest)} patient(s).")
    spaces = report.summary.get("spaces", {})
    thresholds = []
    for space in report.spaces:
        value = spaces.get(space, {}).get("threshold_similarity")
        name = SPACE_NAMES.get(space, space)
        thresholds.append(f"{name} similarity ≥ {value:.4f}" if isinstance(value, int | float)
                          else f"{name}: no threshold recorded")
    alpha = report.summary.get("alpha")
    alpha_text = f"alpha {percent(alpha)}" if isinstance(alpha, int | float) else "alpha ?"
    return f"{text}<br>Thresholds ({alpha_text}): {', '.join(thresholds)}."
