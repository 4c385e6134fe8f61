"""The shape of every long operation: a plain function taking a progress callback and a
cancel event.

The CLI drives such a function with a tqdm bar and sets the event on Ctrl-C; the GUI runs the
same function in a worker thread, forwards progress as a Qt signal and sets the event from its
Cancel button. One implementation, two faces. Nothing here knows about either face.
"""

from __future__ import annotations

import threading
from typing import Protocol


class ProgressFn(Protocol):
    """``progress(fraction, message)``: fraction of the whole job done, in [0, 1]."""

    def __call__(self, fraction: float, message: str = "") -> None: ...


class Cancelled(Exception):
    """Raised inside a job when its cancel event is set; work already written stays whole."""


def no_progress(fraction: float, message: str = "") -> None:
    """A progress callback that ignores everything (for scripted use and tests)."""


def sub_progress(progress: ProgressFn, lo: float, hi: float) -> ProgressFn:
    """Map a phase's own [0, 1] progress into the slice [lo, hi] of the parent's bar.

    One steady bar for a multi-phase job beats several bars that each restart at zero.
    """

    def report(fraction: float, message: str = "") -> None:
        progress(lo + (hi - lo) * min(max(fraction, 0.0), 1.0), message)

    return report


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise :class:`Cancelled` if the job was asked to stop. Call it inside every batch loop."""
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled by the user")

