"""The Models tab's actions: describing an installed model (its card and file, read in a
worker) and removing one (from the folder, the lists and the model cache)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from cxrgan_desktop.gui.jobs.model_cache import ModelCache
from cxrgan_desktop.gui.jobs.worker import JobRunner
from cxrgan_desktop.gui.panels.models import ModelLibrary, details_html


class ModelsController(QObject):
    """Describing runs apart from the window's job slot: it only reads a file's header, and
    must not be refused while a long Generate runs."""

    removed = Signal(object)  # the Path of a model file deleted from the models folder
    status = Signal(str, int)  # message, milliseconds (0: until replaced)

    def __init__(self, library: ModelLibrary, cache: ModelCache,
                 dialog_parent: QWidget) -> None:
        super().__init__(dialog_parent)
        self.library, self.cache, self.dialog_parent = library, cache, dialog_parent
        self._describe_runner: JobRunner | None = None
        library.detailsRequested.connect(self.describe)
        library.removeRequested.connect(self.remove)

    def describe(self, path: Path) -> None:
        from cxrgan_desktop.store.zoo import model_details

        runner = JobRunner(lambda progress, cancel: model_details(path), "describe model",
                           parent=self)
        runner.succeeded.connect(lambda details: self.library.show_details(
            path, details_html(details)))
        runner.failed.connect(partial(self._not_described, path))
        self._describe_runner = runner
        runner.start()

    def _not_described(self, path: Path, message: str) -> None:
        self.library.show_details(path, f"<p>Cannot read {path.name}: {message}</p>")

    def remove(self, path: Path) -> None:
        from cxrgan_desktop.store.zoo import remove_installed

        answer = QMessageBox.question(self.dialog_parent, "Remove model",
                                      f"Delete {path.name} from your models folder?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            remove_installed(path)
        except (OSError, ValueError) as error:
            QMessageBox.warning(self.dialog_parent, "Not removed", str(error))
            return
        self.cache.forget(path)
        self.library.refresh()
        self.removed.emit(path)
        self.status.emit(f"Removed {path.name}", 5000)

    def shutdown(self, wait_ms: int = 10_000) -> None:
        runner = self._describe_runner
        if runner is not None and runner.is_running():
            runner.cancel()
            runner.wait(wait_ms)
