"""Export the gallery's selected images (Ctrl+E) through the library's ``export_items``, in
the window's job slot; the window on screen travels with the 8-bit PNG and DICOM formats."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QWidget

from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.jobs.slot import JobSlot, ProgressPanel
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.gui.shell.image_session import skipped_files_text
from cxrgan_desktop.gui.viewer.gallery import Gallery, GalleryEntry
from cxrgan_desktop.gui.viewer.viewer import ImageViewer

if TYPE_CHECKING:  # the export task pulls in pydicom: loaded on the first export, not at start
    from cxrgan_desktop.tasks.export import ExportItem, ExportResult


def export_item(entry: GalleryEntry) -> ExportItem:
    """A generated entry carries its provenance (model, seed, index, LCO labels) into the
    export; an opened one is named after its file."""
    from cxrgan_desktop.tasks.export import ExportItem

    details = entry.details
    if "seed" not in details:
        return ExportItem(entry.path, entry.path.stem)
    return ExportItem(entry.path, f"seed{details['seed']}_{details['index']:05d}",
                      details["model_name"], details["model_sha256"], details["seed"],
                      details["index"], details.get("lco"))


def export_formats(entries: Sequence[GalleryEntry]) -> list[str]:
    """The formats offered: DICOM marks files synthetic, so not when a real image is among
    them."""
    from cxrgan_desktop.tasks.export import EXPORT_FORMATS

    any_real = any("seed" not in e.details for e in entries)
    return [f for f in EXPORT_FORMATS if not (f == "dicom" and any_real)]


class ExportController(QObject):
    """Asks for the format and folder, then exports in the worker."""

    finished = Signal(object)  # ExportResult
    status = Signal(str, int)  # message, milliseconds (0: until replaced)

    def __init__(self, slot: JobSlot, gallery: Gallery, viewer: ImageViewer,
                 progress_panel: ProgressPanel, settings: Settings,
                 dialog_parent: QWidget) -> None:
        super().__init__(dialog_parent)
        self.slot, self.gallery, self.viewer = slot, gallery, viewer
        self.progress_panel, self.settings = progress_panel, settings
        self.dialog_parent = dialog_parent

    def export_selected(self) -> None:
        from cxrgan_desktop.tasks.export import EXPORT_FORMATS, export_items

        entries = self.gallery.selected_entries()
        if not entries:
            QMessageBox.information(self.dialog_parent, "Export",
                                    "Select images in the gallery first.")
            return
        formats = export_formats(entries)
        labels = [EXPORT_FORMATS[f] for f in formats]
        label, ok = QInputDialog.getItem(self.dialog_parent, f"Export {len(entries)} image(s)",
                                         "Format:", labels, 0, False)
        if not ok:
            return
        folder = QFileDialog.getExistingDirectory(self.dialog_parent, "Export to folder",
                                                  self.settings.last_export_folder)
        if not folder:
            return
        self.settings.last_export_folder = folder
        items = [export_item(e) for e in entries]
        image_format = formats[labels.index(label)]
        window, inverted = self.viewer.window(), self.viewer.is_inverted()
        runner = JobRunner(lambda progress, cancel: export_items(
            items, folder, image_format, window, inverted, progress, cancel), "export")
        runner.succeeded.connect(partial(self._exported, folder))
        self.slot.start(runner, f"Exporting {len(items)} image(s)…", self.progress_panel)

    def _exported(self, folder: str, result: ExportResult) -> None:
        self.status.emit(f"Exported {len(result.written)} file(s) to {folder}", 8000)
        if result.skipped:
            QMessageBox.warning(self.dialog_parent, "Some images were not exported",
                                skipped_files_text(len(result.written), result.skipped,
                                                   verb="Exported"))
        self.finished.emit(result)
