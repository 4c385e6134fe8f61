"""The main window's one job at a time: Generate, Synthesise, Open, Export, FID and model
checks share it, so two torch jobs never compete for the device and Cancel (Esc) always
means the job that is running."""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QObject, Signal

from cxrgan_desktop.gui.jobs.worker import JobRunner


class ProgressPanel(Protocol):
    """The part of a task panel that shows a job: its progress bar and Run/Cancel state."""

    def show_progress(self, fraction: float, message: str) -> None: ...

    def set_running(self, running: bool) -> None: ...


class JobSlot(QObject):
    """Holds the running job. It shows nothing itself: the window turns ``status`` into
    status-bar text, ``failed`` into an error dialog and ``refused`` into a 'busy' note."""

    status = Signal(str, int)  # message, milliseconds to show it (0: until replaced)
    failed = Signal(str)  # the job's error message
    refused = Signal()  # a job was asked for while another ran

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner: JobRunner | None = None

    def is_running(self) -> bool:
        return self.runner is not None and self.runner.is_running()

    def start(self, runner: JobRunner, running_text: str, panel: ProgressPanel) -> bool:
        """Run ``runner`` with ``panel`` showing its progress; False (and ``refused``) if
        another job is running."""
        if self.is_running():
            self.refused.emit()
            return False
        self.runner = runner
        runner.progress.connect(panel.show_progress)
        runner.failed.connect(self._failed)
        runner.cancelled.connect(lambda: self.status.emit("Cancelled.", 5000))
        runner.done.connect(lambda: panel.set_running(False))
        panel.set_running(True)
        self.status.emit(running_text, 0)
        runner.start()
        return True

    def cancel(self) -> None:
        if self.is_running():
            self.runner.cancel()
            self.status.emit("Cancelling after the current batch…", 0)

    def shutdown(self, wait_ms: int = 10_000) -> None:
        """Cancel the running job and wait for it (the window is closing)."""
        if self.is_running():
            self.runner.cancel()
            self.runner.wait(wait_ms)

    def _failed(self, message: str) -> None:
        self.status.emit("Failed.", 5000)
        self.failed.emit(message)
