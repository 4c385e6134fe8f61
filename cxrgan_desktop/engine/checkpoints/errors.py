"""Errors a user can trigger by opening a model file; each names the file and the fix."""

from __future__ import annotations

import os
from collections.abc import Iterable


class CheckpointError(Exception):
    """A model file that cannot be used: unreadable, wrong architecture, wrong format."""

    def __init__(self, path: str | os.PathLike[str], problem: str,
                 details: Iterable[str] = ()) -> None:
        self.path = str(path)
        self.problem = problem
        self.details = list(details)
        text = f"{self.path}: {problem}"
        if self.details:
            shown = self.details[:20]
            more = len(self.details) - len(shown)
            text += "\n  " + "\n  ".join(shown) + (f"\n  ... and {more} more" if more else "")
        super().__init__(text)


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle asks to import or call something that is not plain data."""


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
