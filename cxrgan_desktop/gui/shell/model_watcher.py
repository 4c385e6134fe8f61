"""Notice models and classifiers that appear while the window is open.

``cxrgan import-model`` and ``cxrgan classifier train`` write into the user's models folder
(classifiers in its ``classifiers`` subfolder) from another process; without a watch the
window's lists would show them only after a restart. A :class:`QFileSystemWatcher` on both
folders reports changes; they come in bursts (an atomic write is a temporary file, a rename
and a removal), so a single-shot timer gathers each burst into one :attr:`changed` signal.

A folder that does not exist yet (a fresh install) cannot be watched: its nearest existing
parent is watched instead, and each change re-adds the folders, so the folder is watched
from the moment it is created. Paths are re-added *before* :attr:`changed` is emitted, so a
file written between the two is either seen by the refresh or reported by the watch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

DEBOUNCE_MS = 300  # long enough to gather a write's burst, short enough to feel immediate


def _nearest_existing(path: Path) -> Path | None:
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return candidate
    return None


class ModelFolderWatcher(QObject):
    """Emits :attr:`changed` (once per burst) when files appear, vanish or are replaced in
    any of ``folders``."""

    changed = Signal()

    def __init__(self, folders: Sequence[Path], parent: QObject | None = None,
                 debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self.folders = [Path(f) for f in folders]
        self.watcher = QFileSystemWatcher(self)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(debounce_ms)
        self.timer.timeout.connect(self._settled)
        self.watcher.directoryChanged.connect(self._poke)
        self.watcher.fileChanged.connect(self._poke)
        self.rewatch()

    def watched(self) -> list[str]:
        return self.watcher.directories()

    def rewatch(self) -> None:
        """Watch each folder, or its nearest existing parent while it does not exist."""
        wanted = {str(found) for folder in self.folders
                  if (found := _nearest_existing(folder)) is not None}
        current = set(self.watcher.directories())
        stale = sorted(current - wanted)
        if stale:
            self.watcher.removePaths(stale)
        fresh = sorted(wanted - current)
        if fresh:
            self.watcher.addPaths(fresh)

    def _poke(self, *_args) -> None:
        self.timer.start()  # restarts a running timer: one signal per burst

    def _settled(self) -> None:
        self.rewatch()
        self.changed.emit()
