"""Edit ▸ Preferences: how the mouse sets window/level (persisted in settings)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QWidget,
)

from cxrgan_desktop.core.settings import ViewerPreferences
from cxrgan_desktop.gui.viewer import viewer
from cxrgan_desktop.imaging.display import DragMapping

BUTTON_LABELS = {"left": "Left button", "middle": "Middle button", "right": "Right button"}
MODIFIER_LABELS = {"control": "Ctrl", "shift": "Shift", "alt": "Alt"}


def to_viewer_preferences(prefs: ViewerPreferences) -> viewer.ViewerPreferences:
    """Settings (plain values on disk) -> the viewer's preferences object."""
    drag = DragMapping(width_sign=1 if prefs.drag_right_widens else -1,
                       level_sign=1 if prefs.drag_down_raises_level else -1)
    button = prefs.window_button if prefs.window_button in BUTTON_LABELS else "left"
    modifier = prefs.pan_modifier if prefs.pan_modifier in MODIFIER_LABELS else "control"
    return viewer.ViewerPreferences(window_button=button, pan_modifier=modifier, drag=drag,
                                    keep_zoom_same_size=prefs.keep_zoom_same_size)


class PreferencesDialog(QDialog):
    def __init__(self, prefs: ViewerPreferences, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.button = QComboBox()
        for value, label in BUTTON_LABELS.items():
            self.button.addItem(label, value)
        self.button.setCurrentIndex(max(self.button.findData(prefs.window_button), 0))
        self.modifier = QComboBox()
        for value, label in MODIFIER_LABELS.items():
            self.modifier.addItem(label, value)
        self.modifier.setCurrentIndex(max(self.modifier.findData(prefs.pan_modifier), 0))
        self.right_widens = QCheckBox("dragging right widens the window (less contrast)")
        self.right_widens.setChecked(prefs.drag_right_widens)
        self.down_raises = QCheckBox("dragging down raises the level (darker image)")
        self.down_raises.setChecked(prefs.drag_down_raises_level)
        self.keep_zoom = QCheckBox("keep zoom and pan when the next image has the same size")
        self.keep_zoom.setChecked(prefs.keep_zoom_same_size)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Window/level drag with", self.button)
        form.addRow("Pan with that button and", self.modifier)
        form.addRow("Horizontal", self.right_widens)
        form.addRow("Vertical", self.down_raises)
        form.addRow("New image", self.keep_zoom)
        form.addRow(buttons)

    def preferences(self, invert: bool) -> ViewerPreferences:
        return ViewerPreferences(window_button=self.button.currentData(),
                                 pan_modifier=self.modifier.currentData(),
                                 drag_right_widens=self.right_widens.isChecked(),
                                 drag_down_raises_level=self.down_raises.isChecked(),
                                 invert=invert, keep_zoom_same_size=self.keep_zoom.isChecked())
