"""Run a library job function in a thread; its progress and result come back as signals.

A job is any ``fn(progress, cancel)`` from the library (see ``cxrgan_desktop.core.jobs``). The
GUI thread never runs torch work, so the window stays responsive; Cancel sets the event that
the job checks inside its batch loops.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from cxrgan_desktop.core.fileio import disk_error_message
from cxrgan_desktop.core.jobs import Cancelled

log = logging.getLogger(__name__)

JobFunction = Callable[[Callable[[float, str], None], threading.Event], Any]


def _deliberate(error: Exception) -> bool:
    """Raised on purpose with a message for the user: the project's own error types (a bad
    file, a failed download, a refused study) and the operating system's (a full disk, no
    network)."""
    return type(error).__module__.startswith("cxrgan_desktop.") or isinstance(error, OSError)


class _JobThread(QThread):
    def __init__(self, runner: JobRunner) -> None:
        super().__init__()
        self.runner = runner

    def run(self) -> None:
        self.runner._run_in_thread()


class JobRunner(QObject):
    """One background job. Exactly one of succeeded / failed / cancelled fires, then done."""

    progress = Signal(float, str)
    item = Signal(object)  # intermediate results (e.g. each generated image); call emit_item
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    done = Signal()

    def __init__(self, job: JobFunction, description: str = "",
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.job = job
        self.description = description
        self.cancel_event = threading.Event()
        self._thread = _JobThread(self)
        self._thread.finished.connect(self.done)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        self.cancel_event.set()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def wait(self, milliseconds: int = 30_000) -> bool:
        return self._thread.wait(milliseconds)

    def emit_item(self, obj: object) -> None:
        """Hand a partial result to the GUI thread; safe to call from the job."""
        self.item.emit(obj)

    def _run_in_thread(self) -> None:
        try:
            result = self.job(self._report, self.cancel_event)
        except Cancelled:
            self.cancelled.emit()
        except Exception as error:  # shown to the user as a dialog
            if _deliberate(error):  # its message says it all: no traceback on the console
                log.warning("%s failed: %s", self.description or "job", error)
            else:  # a bug: the traceback is what a report needs
                log.error("%s failed:\n%s", self.description or "job", traceback.format_exc())
            disk = disk_error_message(error)  # a full or read-only disk: the CLI's one line
            self.failed.emit(f"{disk}. Files written before are whole; none is left "
                             "half-written." if disk else str(error) or type(error).__name__)
        else:
            self.succeeded.emit(result)

    def _report(self, fraction: float, message: str = "") -> None:
        self.progress.emit(float(fraction), message)
