"""The image viewer: a radiograph at full resolution with window/level, zoom, pan, histogram,
and a side-by-side compare view.

Composed as pyqtgraph's ImageView is (an ImageItem in a ViewBox, the parts exposed as
attributes), without forwarding their methods. The numbers live in
:mod:`cxrgan_desktop.imaging.display` (no Qt): the viewer keeps the image as 16-bit stored
values, turns the window into a 65536-entry byte table with the project's ``apply_window``
and hands pyqtgraph ready uint8 pixels (measured faster than uint16 data with ImageItem
levels + lookup; see tests/benchmarks/bench_viewer.py). Window changes only mark the display
stale; one zero-delay timer renders the newest state, so a fast drag renders once per event
loop pass, never once per mouse event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from cxrgan_desktop.gui.window_controls import HistogramStrip, WindowControls
from cxrgan_desktop.imaging import display
from cxrgan_desktop.imaging.windowing import Window, unit_window

BUTTONS = {"left": Qt.MouseButton.LeftButton, "right": Qt.MouseButton.RightButton,
           "middle": Qt.MouseButton.MiddleButton}
MODIFIERS = {"control": Qt.KeyboardModifier.ControlModifier,
             "shift": Qt.KeyboardModifier.ShiftModifier,
             "alt": Qt.KeyboardModifier.AltModifier}


def dark_palette(base: QPalette) -> QPalette:
    """Dark greys around the image, so the surround does not outshine the radiograph."""
    palette = QPalette(base)
    roles = QPalette.ColorRole
    for role, colour in ((roles.Window, "#202020"), (roles.WindowText, "#e4e4e4"),
                         (roles.Base, "#2b2b2b"), (roles.AlternateBase, "#262626"),
                         (roles.Text, "#f2f2f2"), (roles.Button, "#333333"),
                         (roles.ButtonText, "#e4e4e4"), (roles.Highlight, "#3a6ea5"),
                         (roles.HighlightedText, "#ffffff"), (roles.ToolTipBase, "#333333"),
                         (roles.ToolTipText, "#f2f2f2"), (roles.PlaceholderText, "#909090")):
        palette.setColor(role, QColor(colour))
    return palette


@dataclass(frozen=True)
class ViewerPreferences:
    """Which mouse button sets the window ("left", "right", "middle"), which modifier turns
    that button's drag into a pan ("control", "shift", "alt"), and the drag directions."""

    window_button: str = "left"
    pan_modifier: str = "control"
    drag: display.DragMapping = field(default_factory=display.DragMapping)

    def __post_init__(self) -> None:
        if self.window_button not in BUTTONS:
            raise ValueError(f"window_button must be one of {sorted(BUTTONS)}")
        if self.pan_modifier not in MODIFIERS:
            raise ValueError(f"pan_modifier must be one of {sorted(MODIFIERS)}")


class ImageViewBox(pg.ViewBox):
    """A ViewBox whose drags set the window (one button), pan (middle, or that button with
    the modifier) or zoom (right, pyqtgraph's own); the wheel zooms about the cursor."""

    sigWindowDrag = Signal(str, float, float)  # "start" / "move" / "finish", dx, dy (pixels)

    def __init__(self) -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False, defaultPadding=0.0)
        self.window_button = Qt.MouseButton.LeftButton
        self.pan_modifier = Qt.KeyboardModifier.ControlModifier
        self.window_locked = False  # True: the window button pans, the window stays

    def mouseDragEvent(self, ev, axis=None):
        button = ev.button()
        panning = bool(ev.modifiers() & self.pan_modifier) or self.window_locked
        if button == self.window_button and not panning:
            ev.accept()
            delta = ev.screenPos() - ev.buttonDownScreenPos()
            phase = "start" if ev.isStart() else "finish" if ev.isFinish() else "move"
            self.sigWindowDrag.emit(phase, delta.x(), delta.y())
        elif button in (Qt.MouseButton.MiddleButton, self.window_button):
            ev.accept()
            step = pg.functions.invertQTransform(self.childGroup.transform())
            shift = step.map(ev.lastPos() - ev.pos()) - step.map(QPointF(0.0, 0.0))
            self.translateBy(x=shift.x(), y=shift.y())
            self.sigRangeChangedManually.emit(self.state["mouseEnabled"])
        else:
            super().mouseDragEvent(ev, axis)


class ImageViewer(QWidget):
    """One image with window/level (16-bit stored units), zoom, pan, invert and histogram."""

    windowChanged = Signal(float, float)  # center, width in 0..65535 units
    pixelHovered = Signal(int, int, float)  # column, row, stored value; not sent off-image
    hoverLeft = Signal()  # the cursor left the image
    imageChanged = Signal()
    invertedChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None,
                 preferences: ViewerPreferences | None = None) -> None:
        super().__init__(parent)
        self.setPalette(dark_palette(self.palette()))
        self.setAutoFillBackground(True)
        self.graphics_view = pg.GraphicsView(background="#000000")
        self.graphics_view.setMinimumSize(256, 256)
        self.view_box = ImageViewBox()
        self.graphics_view.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.controls = WindowControls()
        self.histogram = HistogramStrip()
        self.overlay = QLabel(self.graphics_view)
        self.overlay.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.overlay.setStyleSheet("color: #f0f0f0; background: rgba(0, 0, 0, 150); "
                                   "padding: 3px 6px; font-family: monospace; font-size: 13px;")
        self.overlay.move(6, 6)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.controls)
        layout.addWidget(self.graphics_view, 1)
        layout.addWidget(self.histogram)

        self._stored: np.ndarray | None = None  # [H, W] uint16
        self._displayed: np.ndarray | None = None  # [H, W] uint8, what the ImageItem shows
        self._file_window: Window | None = None
        self._window = unit_window()
        self._inverted = False
        self._drag_start: Window | None = None
        self._fitted = True
        self._hover_text = ""
        self.preferences = ViewerPreferences()
        self.set_preferences(preferences or ViewerPreferences())

        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self._render)

        self.view_box.sigWindowDrag.connect(self._on_window_drag)
        self.view_box.sigRangeChangedManually.connect(self._on_manual_range)
        self.view_box.sigTransformChanged.connect(self._on_transform_changed)
        self.view_box.sigResized.connect(self._on_resized)
        # hover from the viewport's own events: pyqtgraph's scene rate-limits its moves, and
        # the pixel a readout names must be the one under the cursor when it stops
        self.graphics_view.viewport().installEventFilter(self)
        self.controls.windowEdited.connect(lambda c, w: self.set_window(Window(c, w)))
        self.controls.presetChosen.connect(self.apply_preset)
        self.controls.invertToggled.connect(self.set_inverted)
        self.controls.fitClicked.connect(self.fit)
        self.controls.oneToOneClicked.connect(self.one_to_one)
        self.controls.resetClicked.connect(self.reset)
        self.histogram.windowDragged.connect(lambda c, w: self.set_window(Window(c, w)))
        self.controls.set_preset_names(self.preset_names())
        self._show_window()
        self.resize(820, 900)

    # --- image and window -----------------------------------------------------------------

    def set_image(self, pixels01: np.ndarray, file_window: Window | None = None,
                  reset_view: bool = True) -> None:
        """Show ``pixels01`` ([H, W] float in [0, 1], 0 = black). ``file_window`` is the file's
        own window in 0..65535 units (a preset). With ``reset_view`` the window becomes the
        file window (else full range) and the view fits; without, window and zoom are kept."""
        stored = display.to_stored(pixels01)
        if self._stored is None or stored.shape != self._stored.shape:
            height, width = stored.shape
            margin = 8 * max(height, width)  # room for 1:1 on a small image, not lost in space
            self.view_box.setLimits(xMin=-margin, xMax=width + margin, yMin=-margin,
                                    yMax=height + margin, minXRange=4, minYRange=4)
        self._stored = stored
        if self._hover_text:  # it named a pixel of the previous image
            self._hover_text = ""
            self.hoverLeft.emit()
        had_file_window = self._file_window is not None
        self._file_window = file_window
        self.histogram.set_histogram(*display.histogram(stored))
        if had_file_window != (file_window is not None):
            self.controls.set_preset_names(self.preset_names())
        if reset_view:
            self.set_window(file_window or unit_window())
        self._render()
        if reset_view:
            self.fit()
        self._update_overlay()
        self.imageChanged.emit()

    def image(self) -> np.ndarray | None:
        """The shown image as [H, W] uint16 stored values (read it, do not change it)."""
        return self._stored

    def window(self) -> Window:
        return self._window

    def set_window(self, window: Window) -> None:
        """Set Window Center / Width (0..65535 units); the display follows on the next pass
        of the event loop (or at :meth:`flush`)."""
        if window == self._window:
            return
        self._window = window
        self._show_window()
        self._schedule_render()
        self.windowChanged.emit(window.center, window.width)

    def is_inverted(self) -> bool:
        return self._inverted

    def set_inverted(self, inverted: bool) -> None:
        inverted = bool(inverted)
        if inverted == self._inverted:
            return
        self._inverted = inverted
        self.controls.show_inverted(inverted)
        self._update_overlay()
        self._schedule_render()
        self.invertedChanged.emit(inverted)

    def preset_names(self) -> list[str]:
        return display.preset_names(self._file_window is not None)

    def apply_preset(self, name: str) -> None:
        self.set_window(display.preset_window(name, self._stored, self._file_window))

    def reset(self) -> None:
        """File window (else full range), not inverted, image fitted."""
        self.set_window(self._file_window or unit_window())
        self.set_inverted(False)
        self.fit()

    def set_preferences(self, preferences: ViewerPreferences) -> None:
        self.preferences = preferences
        self.view_box.window_button = BUTTONS[preferences.window_button]
        self.view_box.pan_modifier = MODIFIERS[preferences.pan_modifier]

    def set_window_locked(self, locked: bool) -> None:
        """Fix the window where it is: drags pan instead, and the window controls and the
        histogram go (a reader study that shows every reader the same grey levels)."""
        self.view_box.window_locked = locked
        self.controls.setVisible(not locked)
        self.histogram.setVisible(not locked)

    def is_window_locked(self) -> bool:
        return self.view_box.window_locked

    def displayed_bytes(self) -> np.ndarray | None:
        """The [H, W] uint8 pixels on screen, after any pending render."""
        self.flush()
        return self._displayed

    def flush(self) -> None:
        """Render a pending window / invert change now."""
        if self._render_timer.isActive():
            self._render_timer.stop()
            self._render()

    # --- view -----------------------------------------------------------------------------

    def fit(self) -> None:
        """The whole image in view, centred, as large as fits."""
        if self._stored is None:
            return
        height, width = self._stored.shape
        self.view_box.setRange(QRectF(0, 0, width, height), padding=0)
        self._fitted = True

    def one_to_one(self) -> None:
        """One image pixel per device pixel, about the current view centre."""
        ratio = self.graphics_view.devicePixelRatioF()
        center = self.view_box.viewRect().center()
        half_w = self.view_box.width() * ratio / 2
        half_h = self.view_box.height() * ratio / 2
        self.view_box.setRange(xRange=(center.x() - half_w, center.x() + half_w),
                               yRange=(center.y() - half_h, center.y() + half_h), padding=0)
        self._fitted = False

    def zoom_by(self, factor: float) -> None:
        """Magnify by ``factor`` (> 1 zooms in) about the view centre."""
        if factor <= 0 or not math.isfinite(factor):
            raise ValueError(f"zoom factor must be positive, got {factor}")
        self.view_box.scaleBy((1 / factor, 1 / factor), center=self.view_box.viewRect().center())
        self._fitted = False

    def zoom(self) -> float:
        """Screen (device) pixels per image pixel."""
        size = self.view_box.viewPixelSize()[0]
        return self.graphics_view.devicePixelRatioF() / size if size > 0 else 1.0

    def link(self, other: ImageViewer) -> None:
        """Share zoom/pan, window and inversion with ``other``, both ways."""
        other.view_box.setXLink(self.view_box)
        other.view_box.setYLink(self.view_box)
        self.windowChanged.connect(lambda c, w: other.set_window(Window(c, w)))
        other.windowChanged.connect(lambda c, w: self.set_window(Window(c, w)))
        self.invertedChanged.connect(other.set_inverted)
        other.invertedChanged.connect(self.set_inverted)
        other.set_window(self._window)
        other.set_inverted(self._inverted)

    # --- internals ------------------------------------------------------------------------

    def _schedule_render(self) -> None:
        if not self._render_timer.isActive():
            self._render_timer.start()

    def _render(self) -> None:
        if self._stored is None:
            return
        self._displayed = display.display_bytes(self._stored, self._window, self._inverted)
        # no levels, no lookup: pyqtgraph wraps the bytes as a Grayscale8 QImage as they are
        self.image_item.setImage(self._displayed, autoLevels=False)

    def _show_window(self) -> None:
        self.controls.show_window(self._window)
        self.histogram.show_window(self._window)
        self._update_overlay()

    def _update_overlay(self) -> None:
        lines = [f"W {self._window.width:.0f}  L {self._window.center:.0f}"
                 + ("  inverted" if self._inverted else "")]
        if self._stored is not None:
            lines.append(f"Zoom {100 * self.zoom():.0f} %")
        if self._hover_text:
            lines.append(self._hover_text)
        self.overlay.setText("\n".join(lines))
        self.overlay.adjustSize()

    def _on_window_drag(self, phase: str, dx: float, dy: float) -> None:
        if phase == "start" or self._drag_start is None:
            self._drag_start = self._window
        self.set_window(display.drag_window(self._drag_start, dx, dy, self.preferences.drag))
        if phase == "finish":
            self._drag_start = None

    def _on_manual_range(self, *_args) -> None:
        self._fitted = False

    def _on_resized(self) -> None:
        if self._fitted:
            self.fit()

    def _on_transform_changed(self) -> None:
        # crisp pixels at 1:1 and above, smoothed (less aliasing) when the image is shrunk
        smooth = self.zoom() < 0.999
        if smooth != bool(self.graphics_view.renderHints()
                          & QPainter.RenderHint.SmoothPixmapTransform):
            self.graphics_view.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        self._update_overlay()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.graphics_view.viewport():
            if event.type() == QEvent.Type.MouseMove:
                self._hover(self.graphics_view.mapToScene(event.position().toPoint()))
            elif event.type() == QEvent.Type.Leave:
                self._hover(None)
        return super().eventFilter(watched, event)

    def _hover(self, scene_pos: QPointF | None) -> None:
        inside = False
        if self._stored is not None and scene_pos is not None:
            point = self.view_box.mapSceneToView(scene_pos)
            column, row = math.floor(point.x()), math.floor(point.y())
            height, width = self._stored.shape
            inside = (self.view_box.sceneBoundingRect().contains(scene_pos)
                      and 0 <= column < width and 0 <= row < height)
        if inside:
            value = float(self._stored[row, column])
            self._hover_text = f"x {column}  y {row}  value {value:.0f}"
            self._update_overlay()
            self.pixelHovered.emit(column, row, value)
        elif self._hover_text:
            self._hover_text = ""
            self._update_overlay()
            self.hoverLeft.emit()


class CompareView(QWidget):
    """Two viewers side by side with linked zoom/pan, window and inversion."""

    def __init__(self, parent: QWidget | None = None,
                 preferences: ViewerPreferences | None = None) -> None:
        super().__init__(parent)
        self.left = ImageViewer(preferences=preferences)
        self.right = ImageViewer(preferences=preferences)
        self.left.link(self.right)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.left)
        layout.addWidget(self.right)
        self.resize(1400, 860)

    def set_images(self, left01: np.ndarray, right01: np.ndarray,
                   left_window: Window | None = None, right_window: Window | None = None,
                   reset_view: bool = True) -> None:
        """Show two images; with ``reset_view`` both take the left one's default window."""
        self.right.set_image(right01, right_window, reset_view=False)
        self.left.set_image(left01, left_window, reset_view=reset_view)

    def set_preferences(self, preferences: ViewerPreferences) -> None:
        self.left.set_preferences(preferences)
        self.right.set_preferences(preferences)
