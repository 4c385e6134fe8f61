"""The image viewer: a radiograph at full resolution with window/level, zoom, pan, histogram,
and a side-by-side compare view.

Composed as pyqtgraph's ImageView is (an ImageItem in a ViewBox, the parts exposed as
attributes), without forwarding their methods. The numbers live in
:mod:`cxrgan_desktop.imaging.display` (no Qt): the viewer keeps the image as 16-bit stored
values, turns the window into a 65536-entry byte table with the project's ``apply_window``
and hands pyqtgraph ready uint8 pixels. Why not pyqtgraph's own ``setLevels``, which
tests/benchmarks/bench_viewer.py measures about 1.3-2x faster: its linear levels are not the
DICOM VOI function that the reader study and the DICOM export apply (they differ by a grey
level in about 13 % of pixels), and what a radiologist sees here must be what those show.
Window changes only mark the display stale; one zero-delay timer renders the newest state
(and the overlay with it, so the view paints once), so a fast drag renders once per event
loop pass, never once per mouse event.

The numbers a user sees (Level, Width, histogram axis, pixel value) are in the image's own
display units (:class:`~cxrgan_desktop.imaging.display.DisplayUnits`: modality units for a
DICOM); the viewer keeps the window in both units, each exactly as it was set, and applies
the stored-unit one. A newly shown image (:meth:`ImageViewer.show_image`) fits the view
before its first paint, as Weasis, OHIF and Horos do, unless the user asked to keep the zoom
between images of the same size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from cxrgan_desktop.gui.viewer.window_controls import HistogramStrip, WindowControls
from cxrgan_desktop.imaging import display
from cxrgan_desktop.imaging.display import DisplayInfo, DisplayUnits, NamedWindow
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
    that button's drag into a pan ("control", "shift", "alt"), the drag directions, and
    whether a newly shown image of the same size keeps the zoom and pan (else it fits)."""

    window_button: str = "left"
    pan_modifier: str = "control"
    drag: display.DragMapping = field(default_factory=display.DragMapping)
    keep_zoom_same_size: bool = False

    def __post_init__(self) -> None:
        if self.window_button not in BUTTONS:
            raise ValueError(f"window_button must be one of {sorted(BUTTONS)}")
        if self.pan_modifier not in MODIFIERS:
            raise ValueError(f"pan_modifier must be one of {sorted(MODIFIERS)}")


class ImageViewBox(pg.ViewBox):
    """A ViewBox whose drags set the window (one button), pan (middle, or that button with
    the modifier) or zoom (right, pyqtgraph's own); the wheel zooms about the cursor."""

    sigWindowDrag = Signal(str, float, float)  # "start" / "move" / "finish", dx, dy (pixels)
    sigContextMenu = Signal(object)  # QPoint, global: a right click (not a right drag)

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

    def mouseClickEvent(self, ev):
        if ev.button() == Qt.MouseButton.RightButton:  # right drag still zooms
            ev.accept()
            self.sigContextMenu.emit(ev.screenPos().toPoint())
        else:
            super().mouseClickEvent(ev)


class ImageViewer(QWidget):
    """One image with window/level (shown in the image's units), zoom, pan, invert,
    histogram and a corner overlay (modality, size, window, zoom; model and seed)."""

    windowChanged = Signal(float, float)  # center, width in stored 0..65535 units
    pixelHovered = Signal(int, int, float)  # column, row, value in display units; on-image
    hoverLeft = Signal()  # the cursor left the image
    imageChanged = Signal()
    invertedChanged = Signal(bool)
    contextMenuRequested = Signal(object)  # QPoint, global: right click on the image

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
        # plain text: the lines carry file names and DICOM header text, which Qt's automatic
        # rich text would render as markup (a crafted '<img src=...>' would read a file)
        self.overlay.setTextFormat(Qt.TextFormat.PlainText)
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
        self._info = DisplayInfo()
        self._window = unit_window()  # applied, stored units
        self._display_window = self._window  # the same in display units, as set
        self._overlay_on = True
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
        self.view_box.sigContextMenu.connect(self.contextMenuRequested)
        self.view_box.sigRangeChangedManually.connect(self._on_manual_range)
        self.view_box.sigTransformChanged.connect(self._on_transform_changed)
        self.view_box.sigResized.connect(self._on_resized)
        # hover from the viewport's own events: pyqtgraph's scene rate-limits its moves, and
        # the pixel a readout names must be the one under the cursor when it stops
        self.graphics_view.viewport().installEventFilter(self)
        self.controls.windowEdited.connect(lambda c, w: self.set_display_window(Window(c, w)))
        self.controls.presetChosen.connect(self.apply_preset)
        self.controls.invertToggled.connect(self.set_inverted)
        self.controls.fitClicked.connect(self.fit)
        self.controls.oneToOneClicked.connect(self.one_to_one)
        self.controls.resetClicked.connect(self.reset)
        self.histogram.windowDragged.connect(
            lambda c, w: self.set_display_window(Window(c, w)))
        self.controls.set_preset_names(self.preset_names())
        self._show_window()
        self.resize(820, 900)

    # --- image and window -----------------------------------------------------------------

    def set_image(self, pixels01: np.ndarray, file_window: Window | None = None,
                  reset_view: bool = True, info: DisplayInfo | None = None) -> None:
        """Show ``pixels01`` ([H, W] float in [0, 1], 0 = black) as described by ``info``
        (units, own windows, overlay caption; default: 16-bit values). ``file_window`` is a
        stored-unit window of the image's own ("File window"). With ``reset_view`` the
        window becomes the image's first own window (else its full range) and the view
        fits; without, window and zoom are kept (a live preview of the same image)."""
        info = info or DisplayInfo()
        if file_window is not None:
            named = NamedWindow(display.FILE_PRESET, info.units.to_display(file_window))
            info = DisplayInfo(info.units, (named, *info.windows), info.caption)
        self._load(pixels01, info)
        if reset_view:
            self._reset_window()
            self.fit()
        self._finish_load()

    def show_image(self, pixels01: np.ndarray, info: DisplayInfo | None = None) -> None:
        """Show a newly chosen image (the gallery, Open): it fits the view (or keeps zoom
        and pan where the preferences say so and the size is the same) before the first
        paint, so a switch never shows a corner of the new image at the old zoom. The
        window: the image's own first window; else, in the same units as the previous image,
        the window stays (stepping through generates keeps the one set); else full range."""
        info = info or DisplayInfo()
        same_size = self._stored is not None and self._stored.shape == pixels01.shape[:2]
        same_units = self._stored is not None and info.units == self._info.units
        keep_view = same_size and self.preferences.keep_zoom_same_size and not self._fitted
        self._load(pixels01, info)
        if info.windows or not same_units:
            self._reset_window()
        else:
            self._display_window = info.units.to_display(self._window)
            self._show_window()
        if not keep_view:
            self.fit()
        self._finish_load()

    def _load(self, pixels01: np.ndarray, info: DisplayInfo) -> None:
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
        units_changed = info.units != self._info.units
        names_changed = info.windows != self._info.windows
        self._info = info
        if units_changed:
            self.controls.set_units(info.units)
            self.histogram.set_units(info.units)
            self._display_window = info.units.to_display(self._window)
        edges, counts = display.histogram(stored)
        self.histogram.set_histogram(info.units.value(edges), counts)
        if names_changed:
            self.controls.set_preset_names(self.preset_names())

    def _finish_load(self) -> None:
        self._show_window()
        self._render()  # now, not on the next pass: the first paint shows the new image
        self._update_overlay()
        self.imageChanged.emit()

    def _reset_window(self) -> None:
        """The image's first own window, else its full stored range."""
        if self._info.windows:
            self.set_display_window(self._info.windows[0].window)
        else:
            self.set_window(unit_window())

    def image(self) -> np.ndarray | None:
        """The shown image as [H, W] uint16 stored values (read it, do not change it)."""
        return self._stored

    def info(self) -> DisplayInfo:
        """The shown image's units, own windows and caption."""
        return self._info

    def units(self) -> DisplayUnits:
        return self._info.units

    def window(self) -> Window:
        """The applied window in stored 0..65535 units (what exports carry)."""
        return self._window

    def display_window(self) -> Window:
        """The window in the image's display units (what the fields show)."""
        return self._display_window

    def set_window(self, window: Window) -> None:
        """Set Window Center / Width in stored 0..65535 units; the display follows on the
        next pass of the event loop (or at :meth:`flush`)."""
        if window == self._window:
            return
        self._apply_window(window, self._info.units.to_display(window))

    def set_display_window(self, window: Window) -> None:
        """Set Window Center / Width in the image's display units (modality units for a
        DICOM); the numbers shown are exactly these."""
        if window == self._display_window:
            return
        self._apply_window(self._info.units.to_stored(window), window)

    def _apply_window(self, stored: Window, shown: Window) -> None:
        changed = stored != self._window
        self._window, self._display_window = stored, shown
        self.controls.show_window(shown)
        self.histogram.show_window(shown)
        if changed and self._stored is not None:
            # the overlay, drawn over the image, follows in the same pass as the new bytes:
            # updated now, it repainted the view once with the old bytes and once after
            self._schedule_render()
        else:
            self._update_overlay()
        if changed:
            self.windowChanged.emit(stored.center, stored.width)

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
        return display.preset_names(self._info.windows)

    def apply_preset(self, name: str) -> None:
        """An own window (DICOM default N, File window) or a preset relative to the image."""
        for named in self._info.windows:
            if named.name == name:
                self.set_display_window(named.window)
                return
        if name == display.DICOM_DEFAULT:  # the menu's name for the first own window
            self._reset_window()
            return
        units = self._info.units
        window = units.to_display(display.preset_window(name, self._stored))
        # in the units' precision: a percentile's 11189.92 helps nobody read or type it
        self.set_display_window(Window(round(window.center, units.decimals),
                                       max(round(window.width, units.decimals), 1.0)))

    def reset(self) -> None:
        """The image's own window (else full range), not inverted, image fitted."""
        self._reset_window()
        self.set_inverted(False)
        self.fit()

    def set_preferences(self, preferences: ViewerPreferences) -> None:
        self.preferences = preferences
        self.view_box.window_button = BUTTONS[preferences.window_button]
        self.view_box.pan_modifier = MODIFIERS[preferences.pan_modifier]

    def overlay_visible(self) -> bool:
        return self._overlay_on

    def set_overlay_visible(self, visible: bool) -> None:
        """Show or hide the corner overlay (the O key)."""
        self._overlay_on = bool(visible)
        self.overlay.setVisible(self._overlay_on)
        self._update_overlay()

    def toggle_overlay(self) -> None:
        self.set_overlay_visible(not self._overlay_on)

    def readout(self, column: int, row: int, value: float) -> str:
        """The status bar's pixel read-out: position and value in display units."""
        units = self._info.units
        return f"x {column}  y {row}  value {units.format(value)} ({units.name})"

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
        self._update_overlay()

    def _show_window(self) -> None:
        self.controls.show_window(self._display_window)
        self.histogram.show_window(self._display_window)
        self._update_overlay()

    def overlay_lines(self) -> list[str]:
        """What the corner overlay says: the caption (modality; model and seed), size,
        window in display units, zoom, and the pixel under the cursor."""
        units, window = self._info.units, self._display_window
        lines = list(self._info.caption)
        if self._stored is not None:
            height, width = self._stored.shape
            lines.append(f"{width} x {height}")
        lines.append(f"W {units.format(window.width, 1)}  L {units.format(window.center, 1)}"
                     + ("  inverted" if self._inverted else ""))
        if self._stored is not None:
            lines.append(f"Zoom {100 * self.zoom():.0f} %")
        if self._hover_text:
            lines.append(self._hover_text)
        return lines

    def _update_overlay(self) -> None:
        if not self._overlay_on:
            return
        self.overlay.setText("\n".join(self.overlay_lines()))
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
            value = self._info.units.value(float(self._stored[row, column]))
            self._hover_text = (f"x {column}  y {row}  value "
                                f"{self._info.units.format(value)}")
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
                   left_info: DisplayInfo | None = None, right_info: DisplayInfo | None = None,
                   reset_view: bool = True) -> None:
        """Show two images, each in its own units; with ``reset_view`` both take the left
        one's default window (linked in stored units) and the view fits the left image."""
        self.right.set_image(right01, reset_view=False, info=right_info)
        self.left.set_image(left01, reset_view=reset_view, info=left_info)

    def fit(self) -> None:
        self.left.fit()

    def set_preferences(self, preferences: ViewerPreferences) -> None:
        self.left.set_preferences(preferences)
        self.right.set_preferences(preferences)
