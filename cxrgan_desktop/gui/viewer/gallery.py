"""The session's images as a strip of thumbnails; the full image stays on disk.

Each entry keeps its file path and a 128 px thumbnail, not the full 1024 px pixels, so a long
session does not fill memory; selecting an entry reloads the file (about 30 ms for a 16-bit
PNG of 1024x1024).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QItemSelectionModel, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QWidget

THUMBNAIL = 112


@dataclass
class GalleryEntry:
    path: Path
    title: str
    details: dict[str, Any] = field(default_factory=dict)


class Select(Enum):
    """Whether a new entry takes the gallery's selection (and so the viewer)."""

    NO = "no"
    YES = "yes"
    IF_FIRST = "if first"  # only into an empty gallery (LCO results, while snapshots show)


@dataclass(frozen=True)
class GalleryItem:
    """A new image for the gallery, as a job hands it to the GUI thread."""

    entry: GalleryEntry
    pixels: np.ndarray  # [H, W] float in [0, 1], for the thumbnail only
    select: Select = Select.NO


def thumbnail_pixmap(pixels01: np.ndarray, size: int = THUMBNAIL) -> QPixmap:
    """An 8-bit preview about ``size`` px across (block-averaged, full range); images
    smaller than that are enlarged with nearest-neighbour, so their pixels stay visible."""
    step = max(1, -(-max(pixels01.shape) // size))  # ceiling: never wider than size
    h, w = (pixels01.shape[0] // step) * step, (pixels01.shape[1] // step) * step
    small = pixels01[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
    data = np.ascontiguousarray(np.round(np.clip(small, 0, 1) * 255).astype(np.uint8))
    image = QImage(data.data, data.shape[1], data.shape[0], data.strides[0],
                   QImage.Format.Format_Grayscale8)
    pixmap = QPixmap.fromImage(image.copy())
    factor = size // max(data.shape)
    if factor >= 2:  # a 16 px generate would be a speck: enlarge by whole pixels, kept sharp
        pixmap = pixmap.scaled(data.shape[1] * factor, data.shape[0] * factor,
                               Qt.AspectRatioMode.KeepAspectRatio,
                               Qt.TransformationMode.FastTransformation)
    return pixmap


class Gallery(QListWidget):
    entryActivated = Signal(object)  # GalleryEntry
    entryContextMenu = Signal(object, object)  # GalleryEntry, QPoint (global): right click

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListWidget.Movement.Static)
        self.setIconSize(QSize(THUMBNAIL, THUMBNAIL))
        self.setSpacing(4)
        self.setFixedHeight(THUMBNAIL + 46)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.currentItemChanged.connect(self._on_current)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_context_menu)

    def add_entry(self, entry: GalleryEntry, pixels01: np.ndarray, select: bool = False) -> None:
        item = QListWidgetItem(QIcon(thumbnail_pixmap(pixels01)), entry.title)
        item.setData(Qt.ItemDataRole.UserRole, entry)
        item.setToolTip(f"{entry.title}\n{entry.path}")
        self.addItem(item)
        if select:
            self.setCurrentItem(item, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            self.scrollToItem(item)

    def add_item(self, item: GalleryItem) -> None:
        select = item.select is Select.YES or (item.select is Select.IF_FIRST
                                                and self.count() == 0)
        self.add_entry(item.entry, item.pixels, select=select)

    def entries(self) -> list[GalleryEntry]:
        return [self.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.count())]

    def selected_entries(self) -> list[GalleryEntry]:
        return [item.data(Qt.ItemDataRole.UserRole) for item in self.selectedItems()]

    def step(self, delta: int) -> None:
        """Select the next (+1) or previous (-1) image."""
        if self.count():
            row = min(max(self.currentRow() + delta, 0), self.count() - 1)
            self.setCurrentRow(row, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def _on_context_menu(self, position) -> None:
        item = self.itemAt(position)
        if item is not None:
            self.entryContextMenu.emit(item.data(Qt.ItemDataRole.UserRole),
                                       self.viewport().mapToGlobal(position))

    def current_entry(self) -> GalleryEntry | None:
        item = self.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def _on_current(self, current: QListWidgetItem | None, _previous: object) -> None:
        if current is not None:
            self.entryActivated.emit(current.data(Qt.ItemDataRole.UserRole))
