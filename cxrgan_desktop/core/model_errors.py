"""Errors a user can trigger by opening a model file; each names the file and the fix."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from cxrgan_desktop.core.names import printable


class CheckpointError(Exception):
    """A model file that cannot be used: unreadable, wrong architecture, wrong format."""

    def __init__(self, path: str | os.PathLike[str], problem: str,
                 details: Iterable[str] = ()) -> None:
        self.path = str(path)
        self.problem = problem
        self.details = list(details)
        # the path and the details can come from the file (names, keys): escaped, so a crafted
        # file cannot write terminal escapes or forge lines into the message
        text = f"{printable(self.path)}: {problem}"
        if self.details:
            shown = [printable(line) for line in self.details[:20]]
            more = len(self.details) - len(shown)
            text += "\n  " + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else "")
        super().__init__(text)


@contextlib.contextmanager
def failures_named(path: str | os.PathLike[str], this: str, kind: str) -> Iterator[None]:
    """The last line of defence of a loader: whatever a damaged or crafted file makes the
    parsing raise ends as a :class:`CheckpointError` naming the file ("not enough memory to
    open this <this>", "cannot be opened as a <kind>"), never a bare traceback."""
    try:
        yield
    except CheckpointError:
        raise
    except MemoryError as error:
        raise CheckpointError(path, f"not enough memory to open this {this}") from error
    except Exception as error:
        raise CheckpointError(path, f"cannot be opened as a {kind} "
                              f"({type(error).__name__}: {error})") from error


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle asks to import or call something that is not plain data."""


class NonFiniteOutputError(CheckpointError):
    """A generator produced NaN or infinite values: its weights (or the chosen reduced
    precision) cannot give an image. Raised instead of letting the clamp of the output adapter
    turn the values into black or white pixels that look like a result."""

    def __init__(self, path: str | os.PathLike[str], problem: str,
                 indices: Iterable[int] = ()) -> None:
        self.indices = list(indices)
        super().__init__(path, problem)


def shape_mismatches(expected: dict[str, tuple[int, ...]],
                     found: dict[str, tuple[int, ...]]) -> list[str]:
    """Readable lines for every missing, unexpected or differently shaped key."""
    lines = [f"missing key {k} (expected shape {list(s)})" for k, s in expected.items()
             if k not in found]
    lines += [f"unexpected key {k} (shape {list(s)})" for k, s in found.items()
              if k not in expected]
    lines += [f"key {k}: file has shape {list(found[k])}, architecture needs {list(s)}"
              for k, s in expected.items() if k in found and tuple(found[k]) != tuple(s)]
    return lines
