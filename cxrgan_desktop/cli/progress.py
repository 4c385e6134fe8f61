"""The CLI's face for library jobs: a tqdm bar and Ctrl-C mapped to the cancel event."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm


class TqdmProgress:
    """Adapts ``progress(fraction, message)`` to a tqdm bar counted in ``unit`` items."""

    def __init__(self, total: int | None, unit: str, description: str) -> None:
        """``total`` None: a percentage bar, for jobs whose item count only they know."""
        self.total = total or 100
        extra = {} if total else {"bar_format": "{desc}: {percentage:3.0f}%|{bar}| {postfix}"}
        self.bar = tqdm(total=self.total, unit=unit, desc=description, file=sys.stderr,
                        dynamic_ncols=True, **extra)

    def __call__(self, fraction: float, message: str = "") -> None:
        if message:
            self.bar.set_postfix_str(message, refresh=False)
        self.bar.update(round(fraction * self.total) - self.bar.n)

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def cancel_on_interrupt() -> Iterator[threading.Event]:
    """First Ctrl-C sets the event (the job stops cleanly); a second one aborts at once."""
    event = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if event.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        event.set()
        print("\nstopping after the current batch (Ctrl-C again to abort)", file=sys.stderr)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)


class JobCancelled(Exception):
    """The user stopped a CLI job; the message says where its finished output is."""


Result = TypeVar("Result")


def run_job(job: Callable[[Any, threading.Event], Result], total: int | None, unit: str,
            description: str, kept: str, kept_on_error: str | None = None) -> Result:
    """Run ``job(progress, cancel)`` with a progress bar and Ctrl-C as cancel.

    ``kept`` tells the user what a stopped job left behind; the CLI's main turns the
    :class:`JobCancelled` it raises into exit code 130. An OSError (a full or read-only disk)
    carries ``kept_on_error`` (default ``kept``) to main's one-line message.
    """
    from cxrgan_desktop.core.jobs import Cancelled

    bar = TqdmProgress(total, unit, description)
    try:
        with cancel_on_interrupt() as cancel:
            return job(bar, cancel)
    except Cancelled as error:
        raise JobCancelled(f"cancelled; {kept}") from error
    except OSError as error:
        if getattr(error, "cxrgan_kept", None) is None:
            error.cxrgan_kept = kept_on_error or kept  # type: ignore[attr-defined]
        raise
    finally:
        bar.close()
