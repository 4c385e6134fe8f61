"""The window's centre: one viewer, or a side-by-side page (compare, audit pair, projection).

Why a subclass: a stacked widget is as wide as its widest page, and a page of three viewers
(each with its window controls) needs about 1400 px, which made the whole window at least
1900 px wide even while the single viewer was shown: wider than most laptop screens. Here a
side-by-side page sits in a scroll area, so the window keeps the single viewer's minimum and
a narrow window scrolls the pair sideways. Callers keep naming the pages themselves:
``setCurrentWidget`` and ``currentWidget`` translate to and from the scroll areas.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QStackedWidget, QWidget


class CentreStack(QStackedWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._holder: dict[QWidget, QScrollArea] = {}

    def add_page(self, page: QWidget) -> None:
        """A page shown as it is (the single viewer: it sets the window's minimum)."""
        self.addWidget(page)

    def add_wide_page(self, page: QWidget) -> None:
        """A page that may be wider than the window: it scrolls sideways when it is."""
        area = QScrollArea()
        area.setWidgetResizable(True)
        area.setFrameShape(QFrame.Shape.NoFrame)
        area.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        area.setWidget(page)
        self._holder[page] = area
        self.addWidget(area)

    def setCurrentWidget(self, widget: QWidget) -> None:
        super().setCurrentWidget(self._holder.get(widget, widget))

    def currentWidget(self) -> QWidget:
        shown = super().currentWidget()
        if isinstance(shown, QScrollArea) and shown in self._holder.values():
            return shown.widget()
        return shown
