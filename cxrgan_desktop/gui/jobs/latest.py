"""Interactive requests that only the newest one matters for: the image to show for the
gallery's selection, the pair to compare. Decoding a 1024 px DICOM or 16-bit PNG takes tens
of milliseconds, and a slow or remote disk far more, so it runs in a worker, not the GUI
thread; the user may meanwhile have chosen another image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from cxrgan_desktop.gui.jobs.worker import JobRunner


@dataclass(frozen=True)
class _Request:
    number: int
    work: Callable[[], Any]
    context: Any


class LatestOnly(QObject):
    """Runs one request at a time in a worker and delivers only the newest request's result.

    Each request gets an increasing number (STYLE 10: request ids). While one runs, a newer
    request waits in a single slot, replacing any older one still waiting (which is then
    never run), and a result whose number is no longer the newest is dropped. So a quick run
    of selections decodes at most two files and shows the last one chosen, and a slow file
    finishing late never replaces a newer choice. Results arrive on the GUI thread.
    """

    ready = Signal(object, object)  # context, result
    failed = Signal(object, str)  # context, message
    idle = Signal()  # nothing runs or waits any more

    def __init__(self, description: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.description = description
        self._newest = 0
        self._running: _Request | None = None
        self._runner: JobRunner | None = None
        self._waiting: _Request | None = None

    def request(self, work: Callable[[], Any], context: Any = None) -> int:
        """Run ``work()`` in a worker (it must not touch Qt); ``ready(context, result)`` or
        ``failed(context, message)`` follows unless a newer request came first. Returns the
        request's number."""
        self._newest += 1
        self._waiting = _Request(self._newest, work, context)
        if self._running is None:
            self._start_waiting()
        return self._newest

    def drop(self) -> None:
        """Forget every request made so far: nothing more is delivered for them."""
        self._newest += 1
        self._waiting = None

    def pending(self) -> bool:
        """A result may still be delivered: the newest request runs or waits."""
        return self._current() is not None or self._waiting is not None

    def is_running(self) -> bool:
        """A worker runs (perhaps for a request that was since dropped)."""
        return self._runner is not None

    def shutdown(self, wait_ms: int = 10_000) -> None:
        """Drop everything and wait for the running decode (the window is closing)."""
        self.drop()
        if self._runner is not None:
            self._runner.wait(wait_ms)

    def _start_waiting(self) -> None:
        request, self._waiting = self._waiting, None
        self._running = request
        runner = JobRunner(lambda progress, cancel: request.work(), self.description, self)
        runner.succeeded.connect(self._succeeded)
        runner.failed.connect(self._failed)
        runner.done.connect(self._done)
        self._runner = runner
        runner.start()

    def _current(self) -> _Request | None:
        """The running request, if it is still the newest."""
        running = self._running
        return running if running is not None and running.number == self._newest else None

    def _succeeded(self, result: Any) -> None:
        current = self._current()
        if current is not None:
            self.ready.emit(current.context, result)

    def _failed(self, message: str) -> None:
        current = self._current()
        if current is not None:
            self.failed.emit(current.context, message)

    def _done(self) -> None:
        finished, self._runner, self._running = self._runner, None, None
        if finished is not None:
            finished.wait()  # its thread is past run(); wait for it to end before deleting
            finished.deleteLater()
        if self._waiting is not None:
            self._start_waiting()
        else:
            self.idle.emit()
