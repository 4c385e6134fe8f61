"""The last generator loaded, kept between jobs so a second Generate starts at once.

Loading and checking a 1024 px generator takes seconds; Generate, Synthesise and Open model
all go through one :class:`ModelCache`, so the file is read once per change.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Loader = Callable[[str], Any]


def _load_generator(path: str) -> Any:
    from cxrgan_desktop.engine.checkpoints import load_generator  # torch: worker thread only

    return load_generator(path)


@dataclass(frozen=True)
class _Kept:
    path: str
    mtime_ns: int  # a file replaced in place (a new training export) is loaded again
    model: Any


class ModelCache:
    """One loaded model, keyed by its file's path and modification time.

    Thread rule: shared, and guarded by a lock. Jobs call :meth:`get` in their worker
    threads (each job gets a new ``QThread``, so there is no single thread to confine the
    cache to), while the window calls :meth:`forget` on the GUI thread when a model file is
    removed. The lock guards the one slot and a generation count, never the load itself:
    a load takes seconds, and ``forget`` on the GUI thread must not wait for it. A
    ``forget`` that arrives during a load bumps the generation, so the model that load
    returns is handed to its job but not kept. A stale slot is never served, because
    :meth:`get` compares the file's current modification time first (a removed file raises
    ``FileNotFoundError``, as a load would).
    """

    def __init__(self, loader: Loader = _load_generator) -> None:
        self._loader = loader
        self._lock = threading.Lock()
        self._kept: _Kept | None = None
        self._generation = 0

    def get(self, path: str | os.PathLike[str]) -> Any:
        """The model in ``path``: the kept one if the file is unchanged, else loaded now
        (call it from a worker thread: loading runs torch)."""
        name = str(path)
        mtime_ns = Path(name).stat().st_mtime_ns
        with self._lock:
            kept = self._kept
            generation = self._generation
        if kept is not None and (kept.path, kept.mtime_ns) == (name, mtime_ns):
            return kept.model
        model = self._loader(name)
        with self._lock:
            if self._generation == generation:
                self._kept = _Kept(name, mtime_ns, model)
        return model

    def forget(self, path: str | os.PathLike[str]) -> None:
        """Drop the kept model if it came from ``path`` (its file was removed); a load of
        any file that is running now is not kept either."""
        with self._lock:
            self._generation += 1
            if self._kept is not None and self._kept.path == str(path):
                self._kept = None

    def kept_path(self) -> str | None:
        """The file of the kept model, if any (for the window's tests and status)."""
        with self._lock:
            return None if self._kept is None else self._kept.path
