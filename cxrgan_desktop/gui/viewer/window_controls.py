"""The viewer's window/level controls and histogram strip: widgets that show state and report
edits; they hold no state of their own beyond what is displayed (the viewer owns it).

Both work in the image's display units (modality units for a DICOM, see
:class:`~cxrgan_desktop.imaging.display.DisplayUnits`); the viewer converts to the stored
units it applies."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QLayout,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from cxrgan_desktop.imaging.display import (
    MAX_CENTER,
    MAX_WIDTH,
    MIN_CENTER,
    MIN_WIDTH,
    STORED_MAX,
    DisplayUnits,
)
from cxrgan_desktop.imaging.windowing import Window

PRESET_PROMPT = "Window preset..."


class NumberBox(QDoubleSpinBox):
    """A spin box that keeps enough decimals for a header's exact numbers (15000, 40.25)
    but shows no trailing zeros."""

    def textFromValue(self, value: float) -> str:
        text = self.locale().toString(value, "f", self.decimals())
        point = self.locale().decimalPoint()
        if point in text:
            text = text.rstrip("0").rstrip(point)
        return text


def nice_step(target: float) -> float:
    """1, 2 or 5 times a power of ten, near ``target`` (the arrows' step)."""
    if target <= 0 or not math.isfinite(target):
        return 1.0
    power = 10.0 ** math.floor(math.log10(target))
    return min((m * power for m in (1, 2, 5, 10)), key=lambda step: abs(step - target))


def _spin_box(minimum: float, maximum: float, tip: str) -> QDoubleSpinBox:
    box = NumberBox()
    box.setRange(minimum, maximum)
    box.setDecimals(2)
    box.setSingleStep(100.0)
    box.setKeyboardTracking(False)  # report on Enter / focus out / arrows, not per digit
    box.setAlignment(Qt.AlignmentFlag.AlignRight)
    box.setToolTip(tip)
    box.setMinimumWidth(84)
    return box


def _button(text: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setMinimumWidth(40)
    return button


class WindowControls(QWidget):
    """Preset menu, Level and Width fields, Invert, Fit, 1:1, Reset."""

    windowEdited = Signal(float, float)  # center, width typed by the user
    presetChosen = Signal(str)
    invertToggled = Signal(bool)
    fitClicked = Signal()
    oneToOneClicked = Signal()
    resetClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.presets = QComboBox()
        self.presets.setToolTip("Window presets; Lung / Soft tissue / Bone pick parts of the "
                                "grey range and are display conveniences, not calibrated HU")
        self.presets.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.center = _spin_box(MIN_CENTER, MAX_CENTER,
                                "Window Center (level), 16-bit stored units 0-65535")
        self.width = _spin_box(MIN_WIDTH, MAX_WIDTH, "Window Width, 16-bit stored units")
        self.invert = QCheckBox("Invert")
        self.invert.setToolTip("Show white as black (display only)")
        self.fit_button = _button("Fit")
        self.fit_button.setToolTip("Fit the whole image in the view")
        self.one_button = _button("1:1")
        self.one_button.setToolTip("One image pixel per screen pixel")
        self.reset_button = _button("Reset")
        self.reset_button.setToolTip("Default window, no inversion, fit")

        self.view_buttons = QWidget()  # Fit, 1:1, Reset: a second row when space is short
        buttons = QHBoxLayout(self.view_buttons)
        buttons.setContentsMargins(0, 0, 0, 0)
        for button in (self.fit_button, self.one_button, self.reset_button):
            buttons.addWidget(button)
        self.first_row = QHBoxLayout()
        self.first_row.addWidget(self.presets)
        self.first_row.addSpacing(6)
        for text, box in (("Level", self.center), ("Width", self.width)):
            label = QLabel(text)
            label.setBuddy(box)
            self.first_row.addWidget(label)
            self.first_row.addWidget(box)
        self.first_row.addWidget(self.invert)
        self.first_row.addStretch(1)
        self.second_row = QHBoxLayout()
        self.second_row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(2)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.addLayout(self.first_row)
        layout.addLayout(self.second_row)
        self._arrange(one_row=True)

        self._shown = Window(32768.0, 65536.0)
        self.center.valueChanged.connect(self._on_center_changed)
        self.width.valueChanged.connect(self._on_width_changed)
        self.presets.activated.connect(self._on_preset_activated)
        self.invert.toggled.connect(self.invertToggled)
        self.fit_button.clicked.connect(self.fitClicked)
        self.one_button.clicked.connect(self.oneToOneClicked)
        self.reset_button.clicked.connect(self.resetClicked)

    # one row when it fits, else the view buttons wrap below (side-by-side compare is narrow)
    def _arrange(self, one_row: bool) -> None:
        self._one_row = one_row
        self.first_row.removeWidget(self.view_buttons)
        self.second_row.removeWidget(self.view_buttons)
        (self.first_row if one_row else self.second_row).addWidget(self.view_buttons)

    def _first_row_width(self) -> int:
        items = [self.first_row.itemAt(i) for i in range(self.first_row.count())]
        widths = [item.minimumSize().width() for item in items
                  if item.widget() is not self.view_buttons]
        margins = self.layout().contentsMargins()
        return (sum(widths) + self.first_row.spacing() * len(widths) + margins.left()
                + margins.right())

    def minimumSizeHint(self) -> QSize:
        return QSize(self._first_row_width(), super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        one_row = event.size().width() >= (self._first_row_width() + self.first_row.spacing()
                                   + self.view_buttons.sizeHint().width())
        if one_row != self._one_row:  # not inside the resize: Qt is laying out right now
            QTimer.singleShot(0, self, lambda: self._arrange(one_row))  # dies with self

    def set_units(self, units: DisplayUnits) -> None:
        """Ranges, step, decimals and tips of the fields for ``units``: the stored limits
        converted, widened so that a header's wider windows fit (a DICOM's pixels span only
        the window they were read with); enough decimals for the header's numbers; a step
        of about 100 stored values."""
        low, high = units.span()
        extent = max(high - low, 1.0)
        centers = sorted((units.value(MIN_CENTER), units.value(MAX_CENTER),
                          low - 10 * extent, high + 10 * extent))[::3]
        scale = abs(units.scale)
        decimals = min(max(units.decimals + 2, 2), 6)
        for box in (self.center, self.width):
            box.setDecimals(decimals)
            box.setSingleStep(nice_step(100 * scale))
        with QSignalBlocker(self.center), QSignalBlocker(self.width):
            self.center.setRange(*centers)
            self.width.setRange(MIN_WIDTH, max(MAX_WIDTH * scale, 20 * extent))
        self.center.setToolTip(f"Window Center (level), in {units.name}")
        self.width.setToolTip(f"Window Width, in {units.name}")

    def show_window(self, window: Window) -> None:
        """Display ``window`` without reporting it back as an edit."""
        self._shown = window
        with QSignalBlocker(self.center), QSignalBlocker(self.width):
            self.center.setValue(window.center)
            self.width.setValue(window.width)

    def show_inverted(self, inverted: bool) -> None:
        with QSignalBlocker(self.invert):
            self.invert.setChecked(inverted)

    def set_preset_names(self, names: list[str]) -> None:
        with QSignalBlocker(self.presets):
            self.presets.clear()
            self.presets.addItem(PRESET_PROMPT)
            self.presets.addItems(names)

    # an edit changes only its own number; the other keeps its exact (unrounded) value
    def _on_center_changed(self, center: float) -> None:
        self.windowEdited.emit(center, self._shown.width)

    def _on_width_changed(self, width: float) -> None:
        self.windowEdited.emit(self._shown.center, max(width, MIN_WIDTH))

    def _on_preset_activated(self, index: int) -> None:
        name = self.presets.itemText(index)
        with QSignalBlocker(self.presets):
            self.presets.setCurrentIndex(0)  # a menu of actions, not a state
        if index > 0:
            self.presetChosen.emit(name)


class HistogramStrip(pg.PlotWidget):
    """Histogram of the stored values (log counts) with the window as a draggable region."""

    windowDragged = Signal(float, float)  # center, width from the region's bounds

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="#101010")
        self.setMouseEnabled(x=False, y=False)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.hideAxis("left")
        self.getAxis("bottom").setTextPen("#b0b0b0")
        self.getAxis("bottom").setPen("#606060")
        self.setFixedHeight(86)
        self.set_units(DisplayUnits())
        self.curve = self.plot([0.0, 1.0], [0.0], stepMode="center", fillLevel=0,
                               pen=pg.mkPen("#9a9a9a"), brush=pg.mkBrush(150, 150, 150, 90))
        self.region = pg.LinearRegionItem(
            values=(0, STORED_MAX), brush=pg.mkBrush(230, 180, 60, 45),
            pen=pg.mkPen("#e6b43c", width=2), hoverBrush=pg.mkBrush(230, 180, 60, 70))
        self.region.setZValue(10)
        self.addItem(self.region)
        self.region.sigRegionChanged.connect(self._on_region_changed)

    def set_units(self, units: DisplayUnits) -> None:
        """The axis spans the display values of stored 0..65535."""
        self.setXRange(*units.span(), padding=0.01)
        self.setToolTip(f"Histogram of pixel values in {units.name} (log counts); drag the "
                        "band or its edges to set the window")

    def set_histogram(self, edges: np.ndarray, counts: np.ndarray) -> None:
        """Bin ``edges`` (display units, either order) and ``counts``."""
        if edges[0] > edges[-1]:  # MONOCHROME1: stored black is the highest value
            edges, counts = edges[::-1], counts[::-1]
        heights = np.log1p(counts.astype(np.float64))
        self.curve.setData(edges, heights)
        self.setYRange(0, max(float(heights.max()), 1.0), padding=0.05)

    def show_window(self, window: Window) -> None:
        with QSignalBlocker(self.region):
            self.region.setRegion((window.low, window.high))

    def _on_region_changed(self) -> None:
        low, high = self.region.getRegion()
        window = Window.from_bounds(float(low), float(high))
        self.windowDragged.emit(window.center, window.width)
