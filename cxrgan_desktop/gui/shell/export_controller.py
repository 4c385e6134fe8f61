"""Export the gallery's selected images (Ctrl+E) through the library's ``export_items``, in
the window's job slot; the window on screen travels with the 8-bit PNG and DICOM formats.

The format list also offers to leave out images a memorisation audit flagged: each format
again "leaving out images flagged by <audit>" (the audit last used, remembered in the
settings, and then preselected: the safer default), and a last entry to choose an audit. One
list, so the choice is seen every time an export starts and no audit is applied unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
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
    from cxrgan_desktop.tasks.audit_file import FlaggedImages
    from cxrgan_desktop.tasks.export import ExportItem, ExportResult

CHOOSE_AUDIT = "Leave out images flagged by a memorisation audit: choose the audit…"


def audited_label(label: str, audit: str) -> str:
    """A format's entry when the export leaves out what ``audit`` flagged."""
    return f"{label}, leaving out images flagged by the audit {audit}"


def export_choices(labels: Sequence[str], audit: str) -> tuple[list[str], int]:
    """The format list (plain formats; the same leaving out ``audit``'s flagged images when
    one is remembered; then a way to choose an audit) and the entry to preselect: the
    audited variant of the first format when there is an audit."""
    audited = [audited_label(label, audit) for label in labels] if audit else []
    return [*labels, *audited, CHOOSE_AUDIT], len(labels) if audit else 0


def export_item(entry: GalleryEntry) -> ExportItem:
    """A generated entry carries its provenance (model, seed, index, LCO labels, psi) into
    the export; a projection its latent file and the radiograph it is derived from; an
    opened one is named after its file."""
    from cxrgan_desktop.tasks.export import ExportItem

    details = entry.details
    truncation = float(details.get("truncation", 1.0))
    if "seed" in details:
        return ExportItem(entry.path, f"seed{details['seed']}_{details['index']:05d}",
                          details["model_name"], details["model_sha256"], details["seed"],
                          details["index"], details.get("lco"), truncation)
    if details.get("latents_file"):
        return ExportItem(entry.path, entry.path.parent.name + "_" + entry.path.stem,
                          details.get("model_name", ""), details.get("model_sha256", ""),
                          None, 0, None, truncation, str(details["latents_file"]),
                          details.get("derived_from"))
    return ExportItem(entry.path, entry.path.stem)


def export_formats(entries: Sequence[GalleryEntry]) -> list[str]:
    """The formats offered: DICOM marks files synthetic, so not when a real image is among
    them."""
    from cxrgan_desktop.tasks.export import EXPORT_FORMATS

    any_real = any("seed" not in e.details and not e.details.get("latents_file")
                   for e in entries)
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
        audit = self._remembered_audit()
        while True:
            choices, current = export_choices(labels, audit)
            label, ok = QInputDialog.getItem(self.dialog_parent,
                                             f"Export {len(entries)} image(s)", "Format:",
                                             choices, current, False)
            if not ok:
                return
            if label != CHOOSE_AUDIT:
                break
            chosen = self._choose_audit(audit)
            if chosen:
                audit = chosen
        use_audit = label not in labels
        image_format = formats[labels.index(label) if not use_audit else
                               [audited_label(x, audit) for x in labels].index(label)]
        flagged = self._read_audit(audit) if use_audit else None
        if use_audit and flagged is None:
            return
        folder = QFileDialog.getExistingDirectory(self.dialog_parent, "Export to folder",
                                                  self.settings.last_export_folder)
        if not folder:
            return
        self.settings.last_export_folder = folder
        if use_audit:
            self.settings.last_export_audit = audit
        items = [export_item(e) for e in entries]
        window, inverted = self.viewer.window(), self.viewer.is_inverted()
        runner = JobRunner(lambda progress, cancel: export_items(
            items, folder, image_format, window, inverted, progress, cancel, flagged),
            "export")
        runner.succeeded.connect(partial(self._exported, folder))
        self.slot.start(runner, f"Exporting {len(items)} image(s)…", self.progress_panel)

    def _remembered_audit(self) -> str:
        """The audit last used in an export ("" for none, or when it is gone)."""
        audit = self.settings.last_export_audit
        return audit if audit and Path(audit).exists() else ""

    def _choose_audit(self, current: str) -> str:
        path, _ = QFileDialog.getOpenFileName(
            self.dialog_parent, "The audit whose flagged images to leave out",
            current or self.settings.last_export_folder, "Audit table (audit.csv);;CSV "
            "files (*.csv)")
        return path

    def _read_audit(self, audit: str) -> FlaggedImages | None:
        """The audit's flagged images, or None after saying why it cannot be used (a
        damaged or edited table: nothing is exported rather than everything)."""
        from cxrgan_desktop.tasks.audit_file import AuditFileError, read_flagged

        try:
            return read_flagged(audit)
        except AuditFileError as error:
            QMessageBox.warning(self.dialog_parent, "Audit not usable",
                                f"{error}\n\nNothing was exported.")
            return None

    def _exported(self, folder: str, result: ExportResult) -> None:
        message = f"Exported {len(result.written)} file(s) to {folder}"
        if result.audit is not None:
            message += (f"; left out {len(result.excluded)} image(s) flagged by the audit "
                        f"{result.audit['audit_csv']}")
        self.status.emit(message, 8000 if result.audit is None else 0)  # 0: until replaced
        if result.skipped:
            QMessageBox.warning(self.dialog_parent, "Some images were not exported",
                                skipped_files_text(len(result.written), result.skipped,
                                                   verb="Exported"))
        self.finished.emit(result)
