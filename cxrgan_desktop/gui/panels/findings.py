"""The Findings tab: one slider per finding of a classifier, turning a generated image's
latent towards or away from that finding (latent shift, Cohen et al. MIDL 2021), a plot of
every finding's probability along the active slider's path, a morph towards another image,
and projection settings.

The panel shows and collects; :class:`~cxrgan_desktop.gui.panels.findings_controller.
FindingsController` computes (in workers) and puts images in the viewer. Slider positions
are angles: lambda in degrees of arc on the sphere |z| = |z0| (see
:mod:`cxrgan_desktop.engine.latent_shift`), held by the slider in tenths of a degree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.core.settings import ExplorePreferences
from cxrgan_desktop.engine.classifier.installed import installed_classifiers

STEPS_PER_DEGREE = 10  # a slider step is 0.1 degree
PREVIEWS = (("Automatic (full size up to 256 px)", "auto"),
            ("Half size (previous growth stage)", "half"), ("Full size", "full"))
# one colour per finding, the active one drawn thick (pyqtgraph's intColor is cyclic)
_ACTIVE_PEN_WIDTH, _PEN_WIDTH = 3, 1


def slider_degrees(value: int) -> float:
    return value / STEPS_PER_DEGREE


class FindingSlider(QWidget):
    """A finding's name, its slider and the angle it stands at."""

    def __init__(self, name: str, range_deg: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.label = QLabel(name.replace("_", " "))
        self.label.setMinimumWidth(110)
        self.swatch = QLabel("")  # the colour of this finding's curve in the plot
        self.swatch.setFixedWidth(14)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName(f"finding_{name}")
        self.slider.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # arrows, PgUp/PgDn, Home/End
        self.slider.setToolTip(f"{name}: right turns the image towards the finding, left away "
                               "from it (degrees of arc of the latent). Arrow keys: 0.1 degree; "
                               "Page Up/Down: 1 degree")
        self.slider.setSingleStep(1)
        self.slider.setPageStep(STEPS_PER_DEGREE)
        self.value_label = QLabel("0.0°")
        self.value_label.setMinimumWidth(48)
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.slider.valueChanged.connect(
            lambda v: self.value_label.setText(f"{slider_degrees(v):+.1f}°"))
        self.set_range(range_deg)

    def set_range(self, range_deg: float) -> None:
        steps = round(range_deg * STEPS_PER_DEGREE)
        self.slider.setRange(-steps, steps)

    def degrees(self) -> float:
        return slider_degrees(self.slider.value())


class ProbabilityPlot(pg.PlotWidget):
    """Every finding's probability along one path: x the path's position (lambda in degrees,
    or t of a morph), y the classifier's probability; a vertical line where the viewer is."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="#101010")
        self.setMinimumHeight(200)
        self.setYRange(0.0, 1.0, padding=0.02)
        self.setMouseEnabled(x=False, y=False)
        self.setMenuEnabled(False)
        self.getPlotItem().hideButtons()
        self.setLabel("left", "probability")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.marker = pg.InfiniteLine(0.0, angle=90, pen=pg.mkPen("#e0e0e0", width=1,
                                                                   style=Qt.PenStyle.DashLine))
        self.addItem(self.marker)
        self.caption = ""

    def set_curves(self, positions: np.ndarray, probabilities: np.ndarray,
                   labels: tuple[str, ...], active: str, x_label: str, caption: str
                   ) -> dict[str, str]:
        """``probabilities`` [frames, labels] at ``positions``; ``active`` drawn thick.
        Returns each label's colour (#rrggbb): the panel's slider names are the legend (14
        entries inside the plot would cover it)."""
        for curve in self.curves.values():
            self.removeItem(curve)
        self.curves = {}
        colours = {}
        for k, name in enumerate(labels):
            width = _ACTIVE_PEN_WIDTH if name == active else _PEN_WIDTH
            colour = pg.intColor(k, hues=max(len(labels), 1))
            colours[name] = colour.name()
            pen = pg.mkPen(colour, width=width)
            curve = self.plot(np.asarray(positions, float),
                              np.asarray(probabilities[:, k], float), pen=pen, name=name,
                              symbol="o" if name == active else None, symbolSize=4,
                              symbolBrush=pen.color())
            self.curves[name] = curve
        self.setLabel("bottom", x_label)
        if len(positions):
            self.setXRange(float(np.min(positions)), float(np.max(positions)), padding=0.02)
        self.caption = caption
        self.setTitle(caption, size="8pt")
        return colours

    def clear_curves(self, caption: str = "") -> None:
        self.set_curves(np.zeros(0), np.zeros((0, 0)), (), "", "", caption)

    def set_marker(self, position: float) -> None:
        self.marker.setValue(float(position))


class FindingsPanel(QWidget):
    """Sliders, plot, morph and projection settings; emits what the user asks for."""

    sliderMoved = Signal(str, float, bool)  # finding, degrees, final (released / a key)
    classifierChanged = Signal()
    rangeChanged = Signal()
    differenceToggled = Signal(bool)
    resetRequested = Signal()
    exportShiftRequested = Signal()
    morphEndChosen = Signal(int)  # index into the morph list, -1: none
    morphMoved = Signal(int)  # frame number
    exportMorphRequested = Signal()
    projectRequested = Signal()
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.subject = QLabel("Choose a generated image in the gallery (or a projection), then "
                              "Image > Explore findings (Ctrl+Shift+X).")
        self.subject.setWordWrap(True)
        self.subject.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.classifier_box = QComboBox()
        self.classifier_box.setToolTip("The classifier whose findings get sliders (its logit's "
                                       "gradient sets each slider's direction)")
        self.classifier_box.currentIndexChanged.connect(lambda _i: self.classifierChanged.emit())
        self.range_box = QDoubleSpinBox(minimum=0.5, maximum=90.0, singleStep=1.0, decimals=1,
                                        value=10.0, suffix="°")
        self.range_box.setToolTip("Each slider turns the latent up to this angle either way "
                                  "(about 90 degrees is as far as an unrelated image)")
        self.range_box.valueChanged.connect(self._range_changed)
        self.frames = QSpinBox(minimum=2, maximum=200, value=9)
        self.frames.setToolTip("Frames of a path: the probability plot, the exports and morphs")
        self.preview_box = QComboBox()
        for label, value in PREVIEWS:
            self.preview_box.addItem(label, value)
        self.preview_box.setToolTip(
            "What the viewer shows while a slider is dragged; the full image follows on "
            "release.\nHalf size stops the generator one growth stage early: faster on large "
            "models, but its earlier to-image layer may show other contrast (on the demo it "
            "does).")
        form = QFormLayout()
        form.addRow("Classifier", self.classifier_box)
        path_row = QHBoxLayout()
        path_row.addWidget(self.range_box, 1)
        path_row.addWidget(QLabel("Frames"))
        path_row.addWidget(self.frames, 1)
        form.addRow("Range ±", path_row)
        form.addRow("Preview", self.preview_box)

        self.sliders_box = QGroupBox("Findings")
        self.sliders_grid = QGridLayout(self.sliders_box)
        self.sliders_grid.setVerticalSpacing(0)
        self.sliders: dict[str, FindingSlider] = {}
        self.difference = QCheckBox("Difference against the start")
        self.difference.setToolTip("Show the shifted image minus the start image (mid-grey: "
                                   "unchanged; white: brighter now)")
        self.difference.toggled.connect(self.differenceToggled)
        reset = QPushButton("All to 0")
        reset.setToolTip("Every slider back to the start image")
        reset.clicked.connect(self.resetRequested)
        self.export_shift = QPushButton("Export frames…")
        self.export_shift.setToolTip("The active finding's path over the slider range: 16-bit "
                                     "PNG frames, a strip, GIF and APNG, a synthetic DICOM "
                                     "series, frames.csv and path.json")
        self.export_shift.clicked.connect(self.exportShiftRequested)
        row = QHBoxLayout()
        row.addWidget(self.difference, 1)
        row.addWidget(reset)
        row.addWidget(self.export_shift)
        self.plot = ProbabilityPlot()

        morph = QGroupBox("Morph (spherical interpolation)")
        self.morph_end = QComboBox()
        self.morph_end.setToolTip("Another image with a known latent, of the same model")
        self.morph_end.activated.connect(lambda _i: self.morphEndChosen.emit(
            self.morph_end.currentData() if self.morph_end.currentData() is not None else -1))
        self.morph_slider = QSlider(Qt.Orientation.Horizontal)
        self.morph_slider.setObjectName("morph_t")
        self.morph_slider.setRange(0, 0)
        self.morph_slider.setToolTip("t from the start image (left) to the chosen image (right)")
        self.morph_slider.valueChanged.connect(self.morphMoved)
        self.morph_t = QLabel("t = 0")
        self.export_morph = QPushButton("Export morph…")
        self.export_morph.clicked.connect(self.exportMorphRequested)
        morph_form = QFormLayout(morph)
        morph_form.addRow("To", self.morph_end)
        t_row = QHBoxLayout()
        t_row.addWidget(self.morph_slider, 1)
        t_row.addWidget(self.morph_t)
        morph_form.addRow("t", t_row)
        morph_form.addRow(self.export_morph)

        projection = QGroupBox("Find a real image in latent space (projection)")
        self.restarts = QSpinBox(minimum=1, maximum=64, value=4)
        self.restarts.setToolTip("Random starts optimised together; the best is kept")
        self.steps = QSpinBox(minimum=0, maximum=100_000, value=300)
        self.steps.setToolTip("Adam steps per start")
        self.project_button = QPushButton("Find the chosen image in latent space")
        self.project_button.setToolTip("Right-click an opened radiograph in the viewer or the "
                                       "gallery for the same")
        self.project_button.clicked.connect(self.projectRequested)
        projection_form = QFormLayout(projection)
        projection_form.addRow("Starts", self.restarts)
        projection_form.addRow("Steps", self.steps)
        projection_form.addRow(self.project_button)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        foot = QHBoxLayout()
        foot.addWidget(self.progress, 1)
        foot.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.subject)
        layout.addLayout(form)
        layout.addWidget(self.sliders_box)
        layout.addLayout(row)
        layout.addWidget(self.plot, 1)
        layout.addWidget(morph)
        layout.addWidget(projection)
        layout.addLayout(foot)
        layout.addWidget(self.status)
        self.refresh_classifiers()
        self.set_ready(False)

    # -- classifiers and findings -------------------------------------------------------------
    def refresh_classifiers(self, select: str = "") -> None:
        current = select or self.classifier_box.currentData() or ""
        files = [str(p) for p in installed_classifiers()]
        if current and current not in files and Path(current).is_file():
            files.append(current)
        self.classifier_box.blockSignals(True)
        self.classifier_box.clear()
        for file in files:
            self.classifier_box.addItem(Path(file).name.split(".")[0], file)
        index = self.classifier_box.findData(current) if current else 0
        self.classifier_box.setCurrentIndex(max(index, 0))
        self.classifier_box.blockSignals(False)

    def classifier(self) -> str:
        return self.classifier_box.currentData() or ""

    def set_findings(self, labels: tuple[str, ...]) -> None:
        """One slider per label, all at 0."""
        while self.sliders_grid.count():
            widget = self.sliders_grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        self.sliders = {}
        for row, name in enumerate(labels):
            slider = FindingSlider(name, self.range_box.value())
            slider.slider.valueChanged.connect(
                lambda _v, s=slider: self._moved(s, not s.slider.isSliderDown()))
            slider.slider.sliderReleased.connect(lambda s=slider: self._moved(s, True))
            self.sliders_grid.addWidget(slider.swatch, row, 0)
            self.sliders_grid.addWidget(slider.label, row, 1)
            self.sliders_grid.addWidget(slider.slider, row, 2)
            self.sliders_grid.addWidget(slider.value_label, row, 3)
            self.sliders[name] = slider

    def show_path(self, positions: np.ndarray, probabilities: np.ndarray,
                  labels: tuple[str, ...], active: str, x_label: str, caption: str) -> None:
        """A path's probabilities in the plot; each slider's name gets its curve's colour
        swatch, the active finding's name in bold."""
        colours = self.plot.set_curves(positions, probabilities, labels, active, x_label,
                                       caption)
        for name, slider in self.sliders.items():
            colour = colours.get(name)
            slider.swatch.setText("■" if colour else "")
            slider.swatch.setStyleSheet(f"color: {colour}; font-size: 14px;" if colour else "")
            slider.label.setStyleSheet("font-weight: bold;" if name == active else "")

    def _moved(self, slider: FindingSlider, final: bool) -> None:
        self.sliderMoved.emit(slider.name, slider.degrees(), final)

    def values(self) -> dict[str, float]:
        """Every slider's angle in degrees."""
        return {name: s.degrees() for name, s in self.sliders.items()}

    def reset_sliders(self) -> None:
        for slider in self.sliders.values():
            slider.slider.blockSignals(True)
            slider.slider.setValue(0)
            slider.value_label.setText("+0.0°")
            slider.slider.blockSignals(False)

    def _range_changed(self, value: float) -> None:
        for slider in self.sliders.values():
            slider.set_range(value)
        self.rangeChanged.emit()

    def range_deg(self) -> float:
        return float(self.range_box.value())

    def preview(self) -> str:
        return self.preview_box.currentData()

    def set_ready(self, ready: bool, text: str | None = None) -> None:
        """Sliders usable (an image is prepared) or not; ``text`` for the subject line."""
        if text is not None:
            self.subject.setText(text)
        self.sliders_box.setEnabled(ready)
        self.export_shift.setEnabled(ready)
        self.difference.setEnabled(ready)
        self.export_morph.setEnabled(ready and self.morph_slider.maximum() > 0)

    # -- morph --------------------------------------------------------------------------------
    def set_morph_ends(self, titles: list[tuple[int, str]]) -> None:
        """The images a morph can go to: (gallery row, title)."""
        chosen = self.morph_end.currentData()
        self.morph_end.blockSignals(True)
        self.morph_end.clear()
        self.morph_end.addItem("(choose an image)", None)
        for row, title in titles:
            self.morph_end.addItem(title, row)
        self.morph_end.setCurrentIndex(max(self.morph_end.findData(chosen), 0)
                                       if chosen is not None else 0)
        self.morph_end.blockSignals(False)

    def set_morph_frames(self, count: int) -> None:
        self.morph_slider.blockSignals(True)
        self.morph_slider.setRange(0, max(count - 1, 0))
        self.morph_slider.setValue(0)
        self.morph_slider.blockSignals(False)
        self.morph_t.setText("t = 0")
        self.export_morph.setEnabled(count > 1)

    # -- job progress (the window's job slot) -------------------------------------------------
    def show_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(round(fraction * 1000))
        if message:
            self.status.setText(message)

    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        for widget in (self.export_shift, self.export_morph, self.project_button):
            widget.setEnabled(not running)
        if running:
            self.progress.setValue(0)
        else:
            self.export_morph.setEnabled(self.morph_slider.maximum() > 0)

    # -- settings -----------------------------------------------------------------------------
    def load_settings(self, prefs: ExplorePreferences) -> None:
        self.range_box.setValue(prefs.range_deg)
        self.frames.setValue(prefs.frames)
        self.preview_box.setCurrentIndex(max(self.preview_box.findData(prefs.preview), 0))
        self.restarts.setValue(prefs.projection_restarts)
        self.steps.setValue(prefs.projection_steps)
        self.refresh_classifiers(select=prefs.classifier)

    def store_settings(self, prefs: ExplorePreferences) -> None:
        prefs.classifier = self.classifier()
        prefs.range_deg = self.range_deg()
        prefs.frames = self.frames.value()
        prefs.preview = self.preview()
        prefs.projection_restarts = self.restarts.value()
        prefs.projection_steps = self.steps.value()
