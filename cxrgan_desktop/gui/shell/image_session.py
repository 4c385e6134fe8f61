"""The session's images: opening files into the gallery, and reading the chosen one for the
viewer (or the chosen two for Compare).

Every file is read in a worker, never on the GUI thread: Open runs in the window's job slot
(with progress, one dialog for the files that did not open), and showing an entry runs in a
:class:`LatestOnly` loader, so stepping quickly through the gallery stays responsive and the
viewer ends on the last image chosen, whatever order the reads finish in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QStackedWidget, QWidget

from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.jobs.latest import LatestOnly
from cxrgan_desktop.gui.jobs.slot import JobSlot, ProgressPanel
from cxrgan_desktop.gui.jobs.worker import JobFunction, JobRunner
from cxrgan_desktop.gui.viewer.gallery import Gallery, GalleryEntry, GalleryItem, Select
from cxrgan_desktop.gui.viewer.viewer import CompareView, ImageViewer
from cxrgan_desktop.imaging.display import DisplayInfo
from cxrgan_desktop.imaging.readers import LoadedImage, Skipped

# All files first: PACS exports are often DICOM files without an extension, which an
# extension filter would hide; files that are not images are listed with the reason.
IMAGE_FILTER = ("All files, DICOM without extension included (*);;"
                "Images with a known extension (*.dcm *.dicom *.png *.jpg *.jpeg *.tif *.tiff)")
MAX_LISTED_SKIPS = 30  # a dialog taller than the screen helps nobody


def skipped_files_text(opened: int, skipped: Sequence[Skipped], limit: int = MAX_LISTED_SKIPS,
                       verb: str = "Opened") -> str:
    """The one message after Open (or Export): how many images went through, then each file
    that did not with its reason (the first ``limit``; the rest counted)."""
    lines = [f"{verb} {opened} image(s). {len(skipped)} file(s) were not "
             f"{verb.lower()}:", ""]
    lines += [f"{item.shown}: {item.reason}" for item in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"… and {len(skipped) - limit} more")
    return "\n".join(lines)


@dataclass(frozen=True)
class OpenOutcome:
    """What one Open did: images opened, files not opened, and notes on opened ones (an MR
    is not a radiograph, say), each with its reason."""

    opened: int
    skipped: list[Skipped]
    notes: list[Skipped]


@dataclass(frozen=True)
class DecodedImage:
    """A file read for the viewer, with how to show it; made in a worker."""

    image: LoadedImage
    info: DisplayInfo


def decode_entry(entry: GalleryEntry) -> DecodedImage:
    """Read an entry's file and work out its display (units, own windows, caption)."""
    from cxrgan_desktop.imaging.display import display_info
    from cxrgan_desktop.imaging.readers import read_image

    image = read_image(entry.path)
    return DecodedImage(image, display_info(image, entry.details))


def decode_pair(entries: Sequence[GalleryEntry]) -> list[DecodedImage]:
    return [decode_entry(entry) for entry in entries]


def open_job(files: list[Path], emit: Callable[[GalleryItem], None]) -> JobFunction:
    """The job function of one Open: each readable image goes to ``emit`` as it is read."""

    def job(progress, cancel) -> OpenOutcome:
        from cxrgan_desktop.imaging.readers import display_path, scan_images

        opened, skipped, notes = 0, [], []
        for result in scan_images(files, progress, cancel):
            if isinstance(result, Skipped):
                skipped.append(result)
                continue
            opened += 1
            notes += [Skipped(result.source, note) for note in result.warnings]
            entry = GalleryEntry(result.source, display_path(result.source.name),
                                 {"normalisation": result.normalisation})
            emit(GalleryItem(entry, result.pixels, Select.YES))
        return OpenOutcome(opened, skipped, notes)

    return job


class ImageSession(QObject):
    """Opens files into the gallery and puts the chosen images on screen."""

    itemReady = Signal(object)  # GalleryItem, for each image opened
    shown = Signal(object)  # the GalleryEntry now in the viewer
    status = Signal(str, int)  # message, milliseconds (0: until replaced)

    def __init__(self, slot: JobSlot, gallery: Gallery, viewer: ImageViewer,
                 compare: CompareView, centre: QStackedWidget, progress_panel: ProgressPanel,
                 settings: Settings, dialog_parent: QWidget) -> None:
        super().__init__(dialog_parent)
        self.slot, self.gallery, self.viewer, self.compare = slot, gallery, viewer, compare
        self.centre, self.progress_panel = centre, progress_panel
        self.settings, self.dialog_parent = settings, dialog_parent
        self.current: GalleryEntry | None = None  # the entry whose file the viewer shows
        self.viewer_loader = LatestOnly("read image", self)
        self.viewer_loader.ready.connect(self._show_decoded)
        self.viewer_loader.failed.connect(self._not_shown)
        self.compare_loader = LatestOnly("read images to compare", self)
        self.compare_loader.ready.connect(self._compare_decoded)
        self.compare_loader.failed.connect(
            lambda _entries, message: QMessageBox.warning(self.dialog_parent,
                                                          "Cannot compare", message))

    # -- Open ---------------------------------------------------------------------------------
    def open_images(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self.dialog_parent, "Open images",
                                                self.settings.last_open_folder, IMAGE_FILTER)
        if files:
            self.settings.last_open_folder = str(Path(files[0]).parent)
            self.load_image_files([Path(f) for f in files])

    def load_image_files(self, files: list[Path]) -> None:
        """Open files and folders (Ctrl+O, drop, command line) in a worker: every readable
        image goes to the gallery as it is decoded; every other file is collected with its
        reason and shown in one dialog at the end, so one bad file never stops the rest."""
        runner = JobRunner(open_job(files, lambda item: runner.emit_item(item)), "open images")
        runner.item.connect(self.itemReady)
        runner.succeeded.connect(self._report_skipped)
        self.slot.start(runner, f"Reading {len(files)} file(s)…", self.progress_panel)

    def _report_skipped(self, outcome: OpenOutcome) -> None:
        """One message for the whole Open: the files that did not open, and what the
        reader noted about those that did, as the CLI prints them."""
        parts = [skipped_files_text(outcome.opened, outcome.skipped)] if outcome.skipped else []
        if outcome.notes:
            parts.append("Opened with a note:\n\n" + "\n".join(
                f"{item.shown}: {item.reason}" for item in outcome.notes[:MAX_LISTED_SKIPS]))
        if parts:
            QMessageBox.warning(self.dialog_parent, "Some files were not opened"
                                if outcome.skipped else "Notes on the opened images",
                                "\n\n".join(parts))
        else:
            self.status.emit(f"Opened {outcome.opened} image(s).", 5000)

    # -- the viewer ---------------------------------------------------------------------------
    def show_entry(self, entry: GalleryEntry) -> None:
        """Read the entry's file in the worker; the viewer shows it when it is read, unless
        another entry was chosen meanwhile."""
        self.viewer_loader.request(partial(decode_entry, entry), entry)

    def _show_decoded(self, entry: GalleryEntry, decoded: DecodedImage) -> None:
        image = decoded.image
        self.viewer.show_image(image.pixels, decoded.info)
        self.current = entry
        self.status.emit(f"{entry.title}  ({image.width}x{image.height}, "
                         f"{image.normalisation})", 0)
        self.shown.emit(entry)

    def _not_shown(self, _entry: GalleryEntry, message: str) -> None:
        QMessageBox.warning(self.dialog_parent, "Cannot show image", message)

    # -- Compare ------------------------------------------------------------------------------
    def toggle_compare(self) -> None:
        """C: compare the two selected images side by side; C again (or while they are still
        being read) returns to the single viewer."""
        if self.centre.currentWidget() is self.compare or self.compare_loader.pending():
            self.compare_loader.drop()
            self.centre.setCurrentWidget(self.viewer)
            self.viewer.fit()  # the compare view's zoom and pan were its own
            return
        entries = self.gallery.selected_entries()
        if len(entries) != 2:
            QMessageBox.information(self.dialog_parent, "Compare", "Select exactly two images "
                                    "in the gallery (Ctrl+click), then compare.")
            return
        self.compare_loader.request(partial(decode_pair, entries), entries)
        self.status.emit(f"Reading {entries[0].title} and {entries[1].title} to compare…", 0)

    def _compare_decoded(self, entries: list[GalleryEntry], decoded: list[DecodedImage]) -> None:
        self.compare.set_images(*(d.image.pixels for d in decoded), *(d.info for d in decoded))
        self.compare.left.set_window(self.viewer.window())
        self.centre.setCurrentWidget(self.compare)
        self.status.emit(f"Comparing {entries[0].title} | {entries[1].title} "
                         "(linked zoom, pan and window; C returns)", 0)

    def shutdown(self) -> None:
        """Wait for reads still running (the window is closing)."""
        self.viewer_loader.shutdown()
        self.compare_loader.shutdown()
