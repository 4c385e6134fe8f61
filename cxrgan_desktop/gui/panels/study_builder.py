"""The study builder dialog: the organiser's plan, the build as a cancellable job, and the
leak audit's verdict on the package, shown before anything is handed to a reader."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.settings import StudyPreferences
from cxrgan_desktop.gui.jobs.controls import JobControls
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.store import zoo
from cxrgan_desktop.study.design import (
    DEFAULT_INSTRUCTIONS,
    DEFAULT_LABELS,
    RatingScale,
    StudySettings,
)

IMAGE_SIZES = (256, 512, 1024, 2048)
BIT_DEPTHS = (8, 10, 12, 16)


class FolderList(QWidget):
    """Folders (or files) of images, added with a dialog and removed with a button."""

    changed = Signal()

    def __init__(self, what: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.what = what
        self.list = QListWidget()
        self.list.setMaximumHeight(72)
        add, remove = QPushButton("Add folder…"), QPushButton("Remove")
        add.clicked.connect(self._add)
        remove.clicked.connect(self._remove)
        buttons = QVBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)

    def paths(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def set_paths(self, paths: list[str]) -> None:
        self.list.clear()
        self.list.addItems(paths)
        self.changed.emit()

    def _add(self) -> None:
        start = self.paths()[-1] if self.paths() else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, f"Add a folder of {self.what}", start)
        if folder and folder not in self.paths():
            self.list.addItem(folder)
            self.changed.emit()

    def _remove(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.changed.emit()


def _spin(minimum: int, maximum: int, value: int, tip: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(minimum, maximum)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class StudyBuilderDialog(QDialog):
    """Collects a :class:`StudyPlan`, builds it in a worker thread and shows the audit."""

    built = Signal(object)  # BuildResult

    def __init__(self, preferences: StudyPreferences, device: str = "auto",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Build a reader study")
        self.preferences, self.device = preferences, device
        self.runner: JobRunner | None = None
        self.result = None

        self.real = FolderList("real radiographs")
        self.source = QComboBox()
        self.source.addItem("Samples from a model", "model")
        self.source.addItem("Folders of synthetic images (e.g. an LCO archive)", "folders")
        self.model = QComboBox()
        for model in zoo.installed_models():
            self.model.addItem(model.name, model.name)
        if self.model.count() == 0:
            self.model.setPlaceholderText("no model installed: use folders, or import one "
                                          "in the Models tab")
        self.synthetic = FolderList("synthetic images")
        self.exclude_flagged = QLineEdit()
        self.exclude_flagged.setPlaceholderText("none: every synthetic image may be drawn")
        self.exclude_flagged.setToolTip(
            "A memorisation audit (its folder or audit.csv, from the Audit tab or `cxrgan "
            "audit`). Synthetic images it flagged as too close to a training image are never "
            "drawn, also when renamed or re-saved (they are recognised by their pixels); the "
            "next images of the same seeded draw take their place. The audit is recorded in "
            "the answer key only: nothing in the readers' package shows it was used.")
        browse_audit = QPushButton("Browse…")
        browse_audit.clicked.connect(self._browse_audit)
        self.n_real = _spin(1, 100_000, 50, "real images readers rate")
        self.n_synthetic = _spin(1, 100_000, 50, "synthetic images readers rate")
        self.practice = _spin(0, 50, 2, "practice images per class, shown first with "
                              "feedback and never scored")
        self.seed = _spin(0, 2**31 - 1, 0, "the same plan and seed build the same study")
        self.readers = _spin(0, 1000, 0, "readers you plan for, kept in the key: analysis "
                             "warns when sessions are missing (0: not said)")
        self.size = QComboBox()
        for size in IMAGE_SIZES:
            self.size.addItem(f"{size} × {size}", size)
        self.bit_depth = QComboBox()
        for depth in BIT_DEPTHS:
            self.bit_depth.addItem(f"{depth} bit", depth)
        self.window_locked = QCheckBox("Lock window/level (every reader sees the same grey "
                                       "levels)")
        self.allow_back = QCheckBox("Readers may go back and change answers")
        self.feedback = QCheckBox("Tell readers the truth after each practice image")
        self.title = QLineEdit()
        self.instructions = QPlainTextEdit(DEFAULT_INSTRUCTIONS)
        self.instructions.setMaximumHeight(90)
        self.scale = QLineEdit(", ".join(DEFAULT_LABELS))
        self.scale.setToolTip("Rating labels, most 'real' first, comma-separated; an even "
                              "number (2 to 8) so every rating is a real/synthetic answer")
        self.out_folder = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_out)
        self.name = QLineEdit()

        images = QGroupBox("Images")
        form = QFormLayout(images)
        form.addRow("Real:", self.real)
        form.addRow("Synthetic from:", self.source)
        form.addRow("Model:", self.model)
        form.addRow("Synthetic:", self.synthetic)
        audit_row = QHBoxLayout()
        audit_row.addWidget(self.exclude_flagged, 1)
        audit_row.addWidget(browse_audit)
        audit_label = QLabel("Exclude images flagged by an audit:")
        audit_label.setToolTip(self.exclude_flagged.toolTip())
        form.addRow(audit_label, audit_row)
        counts = QHBoxLayout()
        for label, box in (("real", self.n_real), ("synthetic", self.n_synthetic),
                           ("practice per class", self.practice), ("seed", self.seed),
                           ("readers", self.readers)):
            counts.addWidget(QLabel(label))
            counts.addWidget(box)
        form.addRow("Counts:", counts)
        reading = QGroupBox("What readers get")
        rform = QFormLayout(reading)
        rform.addRow("Title:", self.title)
        rform.addRow("Instructions:", self.instructions)
        rform.addRow("Rating scale:", self.scale)
        pixels = QHBoxLayout()
        pixels.addWidget(self.size)
        pixels.addWidget(self.bit_depth)
        pixels.addStretch(1)
        rform.addRow("Every image:", pixels)
        rform.addRow("", self.window_locked)
        rform.addRow("", self.allow_back)
        rform.addRow("", self.feedback)
        output = QGroupBox("Output")
        oform = QFormLayout(output)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out_folder, 1)
        out_row.addWidget(browse)
        oform.addRow("Folder:", out_row)
        oform.addRow("File name:", self.name)
        self.controls = JobControls("Build study", "Prepare every image, write the package "
                                    "and the key, and audit the package for leaks")
        self.audit = QPlainTextEdit()
        self.audit.setReadOnly(True)
        self.audit.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.audit.setPlaceholderText("The leak audit's report appears here after the build.")
        self.open_folder = QPushButton("Show the files")
        self.open_folder.setEnabled(False)
        self.open_folder.clicked.connect(self._show_files)
        self.verdict = QLabel("")
        self.verdict.setWordWrap(True)
        after = QHBoxLayout()
        after.addWidget(self.verdict, 1)
        after.addWidget(self.open_folder)

        # the plan on the left, the audit's full report on the right: a FAIL line anywhere
        # in it is in sight, and the dialog fits a 768 px high screen
        plan = QWidget()
        plan_layout = QVBoxLayout(plan)
        plan_layout.setContentsMargins(0, 0, 0, 0)
        for group in (images, reading, output):
            plan_layout.addWidget(group)
        plan_layout.addStretch(1)
        plan_area = QScrollArea()
        plan_area.setWidget(plan)
        plan_area.setWidgetResizable(True)
        plan_area.setFrameShape(QScrollArea.Shape.NoFrame)
        plan_area.setMinimumWidth(plan.sizeHint().width() + 20)
        left = QVBoxLayout()
        left.addWidget(plan_area, 1)
        left.addWidget(self.controls)
        right = QVBoxLayout()
        right.addWidget(QLabel("<b>Leak audit</b>"))
        right.addWidget(self.audit, 1)
        right.addLayout(after)
        layout = QHBoxLayout(self)
        layout.addLayout(left, 3)
        layout.addLayout(right, 2)
        self.source.currentIndexChanged.connect(self._source_changed)
        self.controls.run_button.clicked.connect(self.start_build)
        self.controls.cancel_button.clicked.connect(self.cancel)
        for signal in (self.real.changed, self.synthetic.changed, self.out_folder.textChanged,
                       self.model.currentIndexChanged):
            signal.connect(self._update_can_run)
        self.load_preferences(preferences)
        self.resize(1240, 700)

    # -- preferences ------------------------------------------------------------------------
    def load_preferences(self, p: StudyPreferences) -> None:
        self.real.set_paths(p.real)
        self.synthetic.set_paths(p.synthetic)
        use_model = (bool(p.model) or not p.synthetic) and self.model.count() > 0
        self.source.setCurrentIndex(0 if use_model else 1)
        if p.model:
            self.model.setCurrentIndex(max(self.model.findData(p.model), 0))
        self.n_real.setValue(p.n_real)
        self.n_synthetic.setValue(p.n_synthetic)
        self.practice.setValue(p.practice)
        self.seed.setValue(p.seed)
        self.readers.setValue(p.readers)
        self.size.setCurrentIndex(max(self.size.findData(p.image_size), 0))
        self.bit_depth.setCurrentIndex(max(self.bit_depth.findData(p.bit_depth), 0))
        self.window_locked.setChecked(p.window_locked)
        self.allow_back.setChecked(p.allow_back)
        self.feedback.setChecked(p.practice_feedback)
        self.title.setText(p.title)
        self.out_folder.setText(p.out_folder)
        self.name.setText(p.name)
        self.exclude_flagged.setText(p.exclude_flagged)
        self._source_changed()

    def store_preferences(self) -> None:
        p = self.preferences
        p.real, p.synthetic = self.real.paths(), self.synthetic.paths()
        p.model = (self.model.currentData() or "") if self._uses_model() else ""
        p.n_real, p.n_synthetic = self.n_real.value(), self.n_synthetic.value()
        p.practice, p.seed = self.practice.value(), self.seed.value()
        p.readers = self.readers.value()
        p.image_size, p.bit_depth = self.size.currentData(), self.bit_depth.currentData()
        p.window_locked, p.allow_back = (self.window_locked.isChecked(),
                                         self.allow_back.isChecked())
        p.practice_feedback = self.feedback.isChecked()
        p.title, p.out_folder = self.title.text(), self.out_folder.text()
        p.name = self.name.text()
        p.exclude_flagged = self.exclude_flagged.text().strip()

    # -- the plan ---------------------------------------------------------------------------
    def _uses_model(self) -> bool:
        return self.source.currentData() == "model"

    def _source_changed(self, *_args) -> None:
        use_model = self._uses_model()
        self.model.setEnabled(use_model)
        self.synthetic.setEnabled(not use_model)
        self._update_can_run()

    def _update_can_run(self, *_args) -> None:
        synthetic = self.model.currentData() if self._uses_model() else self.synthetic.paths()
        ready = bool(self.real.paths() and synthetic and self.out_folder.text().strip())
        running = self.runner is not None and self.runner.is_running()
        self.controls.set_running(running, ready)

    def _browse_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Write the study into",
                                                  self.out_folder.text() or str(Path.home()))
        if folder:
            self.out_folder.setText(folder)

    def _browse_audit(self) -> None:
        start = self.exclude_flagged.text().strip() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "The audit whose flagged images to leave "
                                              "out", start, "Audit table (audit.csv);;CSV "
                                              "files (*.csv)")
        if path:
            self.exclude_flagged.setText(path)

    def settings(self) -> StudySettings:
        """The reader-facing settings; ValueError names what is wrong."""
        labels = tuple(t.strip() for t in self.scale.text().split(",") if t.strip())
        return StudySettings(
            title=self.title.text().strip() or "Real or synthetic?",
            instructions=self.instructions.toPlainText().strip() or DEFAULT_INSTRUCTIONS,
            image_size=self.size.currentData(), bit_depth=self.bit_depth.currentData(),
            window_locked=self.window_locked.isChecked(), allow_back=self.allow_back.isChecked(),
            practice_feedback=self.feedback.isChecked(), scale=RatingScale(labels))

    def plan(self):
        from cxrgan_desktop.tasks.study_build import StudyPlan

        return StudyPlan(self.real.paths(), self.n_real.value(), self.n_synthetic.value(),
                         synthetic=[] if self._uses_model() else self.synthetic.paths(),
                         model=self.model.currentData() if self._uses_model() else None,
                         seed=self.seed.value(), practice=self.practice.value(),
                         settings=self.settings(), device=self.device,
                         readers=self.readers.value(),
                         exclude_flagged=self.exclude_flagged.text().strip())

    # -- the build --------------------------------------------------------------------------
    def start_build(self) -> None:
        try:
            plan = self.plan()
        except ValueError as error:
            self.controls.status.setText(f"Cannot build: {error}")
            return
        out, name = Path(self.out_folder.text().strip()), self.name.text().strip() or "study"
        self.store_preferences()
        device = self.device

        def job(progress, cancel):
            from cxrgan_desktop.engine.devices import resolve_device
            from cxrgan_desktop.tasks.study_build import AuditFailed, build_study

            plan.device = str(resolve_device(device)) if plan.model else "cpu"
            try:
                return build_study(plan, out, name, progress, cancel)
            except AuditFailed as failed:
                return failed  # shown like a result: the report is what the organiser needs

        self.runner = JobRunner(job, "build study", parent=self)
        self.runner.progress.connect(self.controls.show_progress)
        self.runner.succeeded.connect(self._built)
        self.runner.failed.connect(lambda message: self._finished(f"Not built: {message}"))
        self.runner.cancelled.connect(lambda: self._finished("Cancelled; nothing was handed "
                                                             "out."))
        self.runner.done.connect(self._update_can_run)
        self.audit.clear()
        self.verdict.setText("")
        self.open_folder.setEnabled(False)
        self.runner.start()
        self._update_can_run()

    def cancel(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def _finished(self, message: str) -> None:
        self.controls.status.setText(message)

    def _built(self, result) -> None:
        from cxrgan_desktop.tasks.study_build import AuditFailed

        if isinstance(result, AuditFailed):
            self._refused(result)
            return
        self.result = result
        lines = [result.audit.text(), "", f"package (give to readers): {result.package}",
                 f"answer key (keep; never send): {result.key}"]
        lines += [f"skipped: {problem}" for problem in result.skipped]
        if result.exclusion is not None:
            lines.append(f"memorisation audit {result.exclusion['audit_csv']}: "
                         f"{len(result.excluded)} flagged synthetic image(s) left out of the "
                         "draw and replaced (recorded in the answer key only)")
        self.audit.setPlainText("\n".join(lines))
        if result.audit.passed:
            self.verdict.setText(f"<b style='color:#207020'>Leak audit passed.</b> Give "
                                 f"readers <code>{result.package.name}</code>; keep "
                                 f"<code>{result.key.name}</code> to yourself.")
        else:
            self.verdict.setText("<b style='color:#b02020'>Leak audit FAILED</b>: do not hand "
                                 "out this package; see the report above.")
        self.open_folder.setEnabled(True)
        self.controls.status.setText("Built.")
        self.built.emit(result)

    def _refused(self, failed) -> None:
        """The audit failed, so the builder wrote no package: say which checks, plainly."""
        failing = failed.report.blocking_failures()
        self.audit.setPlainText(failed.report.text() + "\n\nNo package was written.")
        items = "".join(f"<li><b>{html.escape(c.name)}</b>: {html.escape(c.detail)}</li>"
                        for c in failing)
        self.verdict.setText("<b style='color:#b02020'>Leak audit FAILED: no package was "
                             f"written.</b> Failed checks:<ul>{items}</ul>")
        self.controls.status.setText("Not built: the leak audit failed.")

    def _show_files(self) -> None:
        if self.result is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.result.package.parent)))

    def reject(self) -> None:
        """Close (Esc, the window's close button): cancel a running build, keep the plan."""
        if self.runner is not None and self.runner.is_running():
            self.runner.cancel()
            self.runner.wait(30_000)
        self.store_preferences()
        super().reject()
