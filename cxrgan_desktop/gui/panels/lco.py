"""The LCO task panel: ask for findings present or absent, watch the optimisation, read the
probabilities of each result.

Each label of the chosen classifier has three choices (any / present / absent): the
tri-state the method needs, laid out as radio columns so the state is readable at a glance.
The panel only collects a request; the main window runs it (``build_archive``) in a worker.

Findings the classifier's card says it cannot read (no positive training images, or a
validation AUROC below :data:`~cxrgan_desktop.engine.classifier.installed.AUROC_FLOOR`) are
greyed with the reason as a tooltip, and only *any* is offered for them until the user ticks
"Offer findings the classifier cannot read": a request the classifier cannot check yields
images whose labels are guesses. After a run the panel shows the library's advice (samples
accepted at step 0, or what to change when few converged).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.settings import LCOPreferences
from cxrgan_desktop.engine.classifier.installed import (
    AUROC_FLOOR,
    classifier_card,
    installed_classifiers,
)
from cxrgan_desktop.gui.jobs.controls import JobControls

CHOICES = ("any", "present", "absent")
CLASSIFIER_FILTER = "Classifiers (*.safetensors *.pth *.pth.tar *.pt);;All files (*)"


@dataclass(frozen=True)
class LCOPanelRequest:
    classifier: str
    judge: str  # "" for none
    present: tuple[str, ...]
    absent: tuple[str, ...]
    threshold: float
    count: int
    steps: int
    seed: int
    restarts: int
    batch_size: int
    image_format: str
    absent_threshold: float = 0.5  # an absent finding must stay below this
    truncation: float = 1.0  # psi (engine/truncation.py) inside the optimised pass; 1: none


@dataclass
class ProbabilityRow:
    label: str
    probability: float
    wanted: bool  # True: present requested, False: absent requested
    threshold: float
    judge: float | None = None


class ProbabilityBars(QWidget):
    """Horizontal bars, one per requested label, with the threshold marked: green when the
    label is on the requested side, red when not; a judge's value as a thin second bar."""

    ROW = 22

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[ProbabilityRow] = []
        self.caption = ""
        self.setMinimumHeight(self.ROW + 8)

    def set_rows(self, rows: list[ProbabilityRow], caption: str = "") -> None:
        self.rows, self.caption = rows, caption
        self.setMinimumHeight(self.ROW * (len(rows) + 1) + 8)
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        painter.setPen(palette.windowText().color())
        painter.drawText(4, 14, self.caption or ("No LCO result selected" if not self.rows
                                                   else ""))
        label_width, right = 130, self.width() - 48
        for i, row in enumerate(self.rows):
            top = self.ROW * (i + 1) + 4
            ok = row.probability >= row.threshold if row.wanted else \
                row.probability < row.threshold
            painter.setPen(palette.windowText().color())
            sign = "+" if row.wanted else "−"
            painter.drawText(4, top + 14, f"{sign} {row.label}")
            track = QRectF(label_width, top + 3, right - label_width, 12)
            painter.fillRect(track, palette.base())
            colour = QColor(60, 170, 90) if ok else QColor(210, 70, 60)
            painter.fillRect(QRectF(track.left(), track.top(),
                                    track.width() * row.probability, 12), colour)
            if row.judge is not None:
                painter.fillRect(QRectF(track.left(), track.bottom() + 1,
                                        track.width() * row.judge, 3), QColor(90, 130, 220))
            x = track.left() + track.width() * row.threshold
            painter.setPen(QPen(palette.windowText().color(), 1.5))
            painter.drawLine(int(x), int(track.top()) - 2, int(x), int(track.bottom()) + 2)
            painter.drawText(int(right) + 2, top + 14, f"{row.probability:.3f}")
        painter.end()


def _probability_box() -> QDoubleSpinBox:
    """A threshold: 0.001-0.999 in steps of 0.05 (decimals first, so the range is not
    rounded to two places)."""
    box = QDoubleSpinBox()
    box.setDecimals(3)
    box.setRange(0.001, 0.999)
    box.setSingleStep(0.05)
    box.setValue(0.5)
    return box


@dataclass
class _LabelChoice:
    group: QButtonGroup
    buttons: dict[str, QRadioButton] = field(default_factory=dict)
    name_label: QLabel | None = None
    problem: str | None = None  # why the classifier cannot read it; None: it can


class LCOPanel(QWidget):
    lcoRequested = Signal(object)  # LCOPanelRequest
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.classifier_box = QComboBox()
        self.classifier_box.setToolTip("The classifier whose reading LCO optimises")
        self.judge_box = QComboBox()
        self.judge_box.setToolTip("A second, independently trained classifier that checks the "
                                  "results (a guard against images that fool only the first)")
        open_classifier = QPushButton("Open…")
        open_classifier.setToolTip("Open a classifier file (.safetensors, or a CheXNet-style "
                                   ".pth.tar)")
        open_classifier.clicked.connect(self._open_classifier)
        row = QHBoxLayout()
        row.addWidget(self.classifier_box, 1)
        row.addWidget(open_classifier)
        self.classifier_box.currentIndexChanged.connect(self._classifier_changed)

        self.labels_box = QGroupBox("Findings")
        self.labels_grid = QGridLayout(self.labels_box)
        self.labels_grid.setVerticalSpacing(2)
        self.choices: dict[str, _LabelChoice] = {}
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.labels_box)
        scroll.setMinimumHeight(180)
        self.unreadable_note = QLabel("")
        self.unreadable_note.setWordWrap(True)
        self.allow_unreliable = QCheckBox("Offer findings the classifier cannot read")
        self.allow_unreliable.setToolTip(
            "Greyed findings had no positive training images or a validation AUROC below "
            f"{AUROC_FLOOR:.2f} (from the classifier's card): images asked to show them carry "
            "labels nobody checked")
        self.allow_unreliable.toggled.connect(self._update_offered)

        self.threshold = _probability_box()
        self.threshold.setToolTip("A finding requested present must reach this probability "
                                  "(0.8-0.9 when it should be clear)")
        self.absent_threshold = _probability_box()
        self.absent_threshold.setToolTip("A finding requested absent must stay below this "
                                         "probability (0.2-0.3 when it should be clearly "
                                         "absent)")
        self.count = QSpinBox(minimum=1, maximum=10_000, value=8)
        self.steps = QSpinBox(minimum=1, maximum=10_000, value=200)
        self.steps.setToolTip("Adam steps per attempt before it counts as failed")
        self.restarts = QSpinBox(minimum=0, maximum=20, value=2)
        self.restarts.setToolTip("New starting latents tried after a failed attempt")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        self.seed.setToolTip("Sample k starts from image k of this seed in the Generate tab")
        self.batch_size = QSpinBox(minimum=1, maximum=256, value=8)
        self.image_format = QComboBox()
        self.image_format.addItem("16-bit PNG", "png16")
        self.image_format.addItem("DICOM (marked synthetic)", "dicom")
        self.truncation = QDoubleSpinBox(minimum=0.0, maximum=1.0, singleStep=0.05,
                                         decimals=2, value=1.0)
        self.truncation.setToolTip(
            "Truncation psi: pulls each image towards the model's average image, inside the "
            "pass LCO optimises.\n1.00: no truncation, the model's full variety.\n"
            "Lower: more typical, cleaner-looking images, but less diverse and less "
            "representative of the data the model learnt; 0.00: the average image.\n"
            "Recorded in archive.json, each item's record and the images' provenance.")
        form = QFormLayout()
        form.addRow("Classifier", row)
        form.addRow("Judge", self.judge_box)
        form.addRow("Present ≥", self.threshold)
        form.addRow("Absent <", self.absent_threshold)
        form.addRow("Images", self.count)
        form.addRow("Steps", self.steps)
        form.addRow("Restarts", self.restarts)
        form.addRow("Seed", self.seed)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Save as", self.image_format)
        form.addRow("Truncation", self.truncation)

        self.controls = JobControls("Synthesise",
                                    "Optimise latents for the chosen findings (Ctrl+L)")
        self.run_button, self.cancel_button = (self.controls.run_button,
                                               self.controls.cancel_button)
        self.progress, self.status = self.controls.progress, self.controls.status
        self.run_button.clicked.connect(self.request_lco)
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.bars = ProbabilityBars()
        self.hint = QLabel("No classifier yet: train one with 'cxrgan classifier train', or "
                           "open a classifier file.")
        self.hint.setWordWrap(True)
        self.advice = QLabel("")
        self.advice.setObjectName("lco_advice")
        self.advice.setWordWrap(True)
        self.advice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.advice.setStyleSheet("QLabel#lco_advice { border: 1px solid palette(mid); "
                                  "border-left: 4px solid #d9a400; padding: 6px; }")
        self.advice.hide()

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.unreadable_note)
        layout.addWidget(self.allow_unreliable)
        layout.addWidget(self.hint)
        layout.addWidget(self.controls)
        layout.addWidget(self.advice)
        layout.addWidget(self.bars)
        self.refresh_classifiers()

    # -- classifiers ----------------------------------------------------------------------
    def refresh_classifiers(self, select: str = "", judge: str = "") -> None:
        current = select or self.classifier_box.currentData() or ""
        current_judge = judge or self.judge_box.currentData() or ""
        files = [str(p) for p in installed_classifiers()]
        for extra in (current, current_judge):
            if extra and extra not in files and Path(extra).is_file():
                files.append(extra)
        for box, chosen, none_item in ((self.classifier_box, current, False),
                                       (self.judge_box, current_judge, True)):
            box.blockSignals(True)
            box.clear()
            if none_item:
                box.addItem("(none)", "")
            for file in files:
                box.addItem(Path(file).name.split(".")[0], file)
            index = box.findData(chosen) if chosen else 0
            box.setCurrentIndex(max(index, 0))
            box.blockSignals(False)
        self.hint.setVisible(not files)
        self._classifier_changed()

    def _open_classifier(self) -> None:
        file, _ = QFileDialog.getOpenFileName(self, "Open a classifier", "", CLASSIFIER_FILTER)
        if file:
            self.refresh_classifiers(select=file)

    def _classifier_changed(self, *_args) -> None:
        path = self.classifier_box.currentData()
        previous = {name: self.choice(name) for name in self.choices}
        while self.labels_grid.count():
            widget = self.labels_grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.choices.clear()
        labels: tuple[str, ...] = ()
        problems: dict[str, str] = {}
        if path:
            try:
                card = classifier_card(path)
            except ValueError as error:
                self.status.setText(str(error))
            else:
                labels, problems = card.labels, card.unreadable()
        for column, title in enumerate(("Finding", "Any", "Present", "Absent")):
            header = QLabel(f"<b>{title}</b>")
            self.labels_grid.addWidget(header, 0, column)
        for row, name in enumerate(labels, start=1):
            name_label = QLabel(name.replace("_", " "))
            self.labels_grid.addWidget(name_label, row, 0)
            group = QButtonGroup(self)
            choice = _LabelChoice(group, name_label=name_label, problem=problems.get(name))
            for column, value in enumerate(CHOICES, start=1):
                button = QRadioButton()
                button.setToolTip(f"{name}: {value}")
                button.setObjectName(f"lco_{name}_{value}")
                group.addButton(button)
                choice.buttons[value] = button
                self.labels_grid.addWidget(button, row, column,
                                           alignment=Qt.AlignmentFlag.AlignCenter)
            choice.buttons[previous.get(name, "any")].setChecked(True)
            self.choices[name] = choice
        self.unreadable_note.setText(
            f"Greyed: {len(problems)} finding{'s' if len(problems) != 1 else ''} this classifier "
            "cannot read (hover for why)." if problems else "")
        self.unreadable_note.setVisible(bool(problems))
        self.allow_unreliable.setVisible(bool(problems))
        self._update_offered()
        self.run_button.setEnabled(bool(labels) and not self.cancel_button.isEnabled())

    def unreadable(self) -> dict[str, str]:
        """Findings of the chosen classifier it cannot read, with the reason."""
        return {n: c.problem for n, c in self.choices.items() if c.problem is not None}

    def _update_offered(self, *_args) -> None:
        """Grey the findings the classifier cannot read and, unless allowed, offer only
        *any* for them (a choice already made falls back to *any*)."""
        allowed = self.allow_unreliable.isChecked()
        for name, choice in self.choices.items():
            if choice.problem is None or choice.name_label is None:
                continue
            why = (f"{name}: the classifier cannot read this finding ({choice.problem}; "
                   f"AUROC floor {AUROC_FLOOR:.2f}, from its card).")
            if not allowed:
                why += " Not offered: tick 'Offer findings the classifier cannot read' to use it."
                if self.choice(name) != "any":
                    choice.buttons["any"].setChecked(True)
            choice.name_label.setText(f"<i>{html.escape(name.replace('_', ' '))}</i> "
                                      "<small>(cannot read)</small>")
            choice.name_label.setStyleSheet("color: palette(mid);")
            choice.name_label.setToolTip(why)
            for value in ("present", "absent"):
                choice.buttons[value].setEnabled(allowed)
                choice.buttons[value].setToolTip(why)

    def choice(self, label: str) -> str:
        buttons = self.choices[label].buttons
        return next((value for value, b in buttons.items() if b.isChecked()), "any")

    def set_choice(self, label: str, value: str) -> None:
        self.choices[label].buttons[value].setChecked(True)

    # -- running ----------------------------------------------------------------------------
    def request_lco(self) -> None:
        present = tuple(n for n in self.choices if self.choice(n) == "present")
        absent = tuple(n for n in self.choices if self.choice(n) == "absent")
        if not present and not absent:
            self.status.setText("Choose at least one finding as present or absent.")
            return
        self.lcoRequested.emit(LCOPanelRequest(
            classifier=self.classifier_box.currentData(), judge=self.judge_box.currentData(),
            present=present, absent=absent, threshold=round(self.threshold.value(), 4),
            count=self.count.value(), steps=self.steps.value(), seed=self.seed.value(),
            restarts=self.restarts.value(), batch_size=self.batch_size.value(),
            image_format=self.image_format.currentData(),
            absent_threshold=round(self.absent_threshold.value(), 4),
            truncation=round(self.truncation.value(), 4)))

    def set_running(self, running: bool) -> None:
        self.controls.set_running(running, bool(self.choices))
        if running:
            self.advice.hide()

    def show_summary(self, summary: Any) -> None:
        """After a run: the library's advice (an ``ArchiveSummary``'s), if it has any."""
        advice = getattr(summary, "advice", None)
        remarks = advice.remarks if advice is not None else ()
        self.advice.setText("<b>Advice</b><br>" + "<br><br>".join(html.escape(r)
                                                                  for r in remarks))
        self.advice.setVisible(bool(remarks))

    def show_progress(self, fraction: float, message: str) -> None:
        self.controls.show_progress(fraction, message)

    # -- settings ---------------------------------------------------------------------------
    def load_settings(self, prefs: LCOPreferences) -> None:
        self.threshold.setValue(prefs.threshold)
        self.absent_threshold.setValue(prefs.absent_threshold)
        self.count.setValue(prefs.count)
        self.steps.setValue(prefs.steps)
        self.seed.setValue(prefs.seed)
        self.restarts.setValue(prefs.restarts)
        self.batch_size.setValue(prefs.batch_size)
        self.image_format.setCurrentIndex(max(self.image_format.findData(prefs.image_format), 0))
        self.truncation.setValue(prefs.truncation)  # clamped to 0..1
        self.refresh_classifiers(select=prefs.classifier, judge=prefs.judge)

    def store_settings(self, prefs: LCOPreferences) -> None:
        prefs.classifier = self.classifier_box.currentData() or ""
        prefs.judge = self.judge_box.currentData() or ""
        prefs.threshold = float(self.threshold.value())
        prefs.absent_threshold = float(self.absent_threshold.value())
        prefs.count = self.count.value()
        prefs.steps = self.steps.value()
        prefs.seed = self.seed.value()
        prefs.restarts = self.restarts.value()
        prefs.batch_size = self.batch_size.value()
        prefs.image_format = self.image_format.currentData()
        prefs.truncation = float(self.truncation.value())
