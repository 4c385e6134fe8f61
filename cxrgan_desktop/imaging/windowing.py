"""Window/level: the DICOM linear VOI function, one implementation for the whole application.

DICOM PS3.3 C.11.2.1.2.1 (VOI LUT Function LINEAR), for output range [y_min, y_max]:

    x <= c - 0.5 - (w - 1) / 2          -> y_min
    x >  c - 0.5 + (w - 1) / 2          -> y_max
    otherwise  y = ((x - (c - 0.5)) / (w - 1) + 0.5) * (y_max - y_min) + y_min

The viewer, the reader study and the DICOM export all call :func:`apply_window`; the values
a user sets are the same Window Center / Window Width numbers the export writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """Window Center and Width in the units of the image they apply to (width >= 1)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if not np.isfinite(self.center) or not np.isfinite(self.width):
            raise ValueError(f"window must be finite, got center {self.center}, width {self.width}")
        if self.width < 1:
            raise ValueError(f"DICOM window width must be at least 1, got {self.width}")

    @property
    def low(self) -> float:
        """The input value at and below which the output is y_min."""
        return self.center - 0.5 - (self.width - 1) / 2

    @property
    def high(self) -> float:
        """The input value above which the output is y_max."""
        return self.center - 0.5 + (self.width - 1) / 2

    @classmethod
    def from_bounds(cls, low: float, high: float) -> Window:
        """The window whose linear ramp runs from ``low`` to ``high``."""
        width = max(high - low + 1.0, 1.0)
        return cls(center=low + 0.5 + (width - 1) / 2, width=width)


def apply_window(values: np.ndarray, window: Window, y_min: float = 0.0,
                 y_max: float = 1.0) -> np.ndarray:
    """Map stored-unit values through the linear VOI function; float32 out, in [y_min, y_max]."""
    x = np.asarray(values, dtype=np.float64)
    if window.width == 1:  # degenerate ramp: a threshold at c - 0.5
        out = np.where(x <= window.center - 0.5, y_min, y_max)
    else:
        out = ((x - (window.center - 0.5)) / (window.width - 1) + 0.5) * (y_max - y_min) + y_min
        out = np.clip(out, y_min, y_max)
        out = np.where(x <= window.low, y_min, np.where(x > window.high, y_max, out))
    return out.astype(np.float32)


def unit_window(levels: int = 65536) -> Window:
    """The window that shows a [0, 1] image stored as 0..levels-1 in full (the identity)."""
    return Window.from_bounds(0.0, float(levels - 1))


def percentile_window(values: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> Window:
    """A robust window from percentiles, for images without a stored window."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise ValueError("cannot compute a window: the image has no finite values")
    low, high = np.percentile(finite, [low_pct, high_pct])
    if high <= low:
        high = low + 1.0
    return Window.from_bounds(float(low), float(high))
