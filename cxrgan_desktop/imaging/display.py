"""Display mapping for the image viewer: pure numpy, no Qt.

The viewer shows a library image (float32 H x W in [0, 1], 0 = black) in 16-bit stored-value
units: ``stored = round(65535 * pixel)``, the value a 16-bit PNG or DICOM export writes (as
:func:`cxrgan_desktop.imaging.png16.to_uint16` computes it). Window Center / Width are in
those units, and the display byte of every pixel is

    round(apply_window(stored, window, 0, 255))          (255 minus that when inverted)

with :func:`cxrgan_desktop.imaging.windowing.apply_window`, the project's one VOI function.
For speed the function is evaluated once per window on all 65536 stored values (a lookup
table) and the image is indexed through it; the result is the same number for every pixel.

Also here: the window presets, the mouse-drag-to-window mapping and the histogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cxrgan_desktop.imaging.windowing import Window, apply_window, percentile_window, unit_window

STORED_LEVELS = 65536  # 16-bit stored values 0..65535
STORED_MAX = STORED_LEVELS - 1

FILE_PRESET = "File window"
FULL_PRESET = "Full range"
AUTO_PRESET = "Auto (0.5-99.5 %)"


def to_stored(pixels01: np.ndarray) -> np.ndarray:
    """[H, W] float in [0, 1] -> [H, W] uint16 stored values, round(65535 * pixel).

    The same numbers as :func:`png16.to_uint16` (float64 product, clipped, rounded half to
    even), computed in one float64 buffer; NaN becomes 0.
    """
    pixels = np.asarray(pixels01)
    if pixels.ndim != 2:
        raise ValueError(f"the viewer shows 2-D grey images, got an array of shape {pixels.shape}")
    work = np.multiply(pixels, float(STORED_MAX), dtype=np.float64)
    np.fmax(work, 0.0, out=work)  # fmax, unlike clip, turns NaN into the other operand: 0
    np.minimum(work, float(STORED_MAX), out=work)
    np.rint(work, out=work)
    return work.astype(np.uint16)


def window_lut(window: Window, inverted: bool = False) -> np.ndarray:
    """[65536] uint8: the display byte for every stored value under ``window``."""
    levels = np.arange(STORED_LEVELS, dtype=np.float64)
    lut = np.rint(apply_window(levels, window, 0.0, 255.0)).astype(np.uint8)
    if inverted:
        np.subtract(255, lut, out=lut)
    return lut


def display_bytes(stored: np.ndarray, window: Window, inverted: bool = False,
                  lut: np.ndarray | None = None) -> np.ndarray:
    """[H, W] uint16 stored values -> [H, W] uint8 display bytes (C-contiguous)."""
    if stored.dtype != np.uint16:
        raise TypeError(f"stored values must be uint16, got {stored.dtype}")
    table = window_lut(window, inverted) if lut is None else lut
    return np.take(table, stored)


# --- presets -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FractionPreset:
    """A window given as the fraction of the full 0..65535 range its ramp spans."""

    low: float
    high: float
    note: str

    def window(self) -> Window:
        return Window.from_bounds(round(self.low * STORED_MAX), round(self.high * STORED_MAX))


# Display conveniences for radiographs, NOT calibrated Hounsfield-unit windows: a radiograph
# (and a GAN output) has no physical unit, so these only pick a part of the grey range. In
# the library's convention 0 is black, i.e. air / lung is dark and bone bright.
RADIOGRAPH_PRESETS: dict[str, FractionPreset] = {
    "Lung": FractionPreset(0.10, 0.60, "dark-to-middle range spread out: lung fields, vessels"),
    "Soft tissue": FractionPreset(0.35, 0.95, "middle-to-bright range: mediastinum, heart"),
    "Bone": FractionPreset(0.55, 1.00, "bright range: ribs, spine, clavicles"),
    "High contrast": FractionPreset(0.25, 0.75, "middle half of the range, steep ramp"),
}


def preset_names(has_file_window: bool) -> list[str]:
    """The preset names, in menu order; the file's own window only when it has one."""
    names = [FILE_PRESET] if has_file_window else []
    return [*names, FULL_PRESET, AUTO_PRESET, *RADIOGRAPH_PRESETS]


def auto_window(stored: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> Window:
    """Percentile window of the stored values (on a 1-in-4 subsample above 256 x 256)."""
    sample = stored[::2, ::2] if stored.size > 65536 else stored
    return percentile_window(sample, low_pct, high_pct)


def preset_window(name: str, stored: np.ndarray | None = None,
                  file_window: Window | None = None) -> Window:
    """The window a preset names; ``stored`` is needed for the auto preset."""
    if name == FILE_PRESET:
        if file_window is None:
            raise ValueError("this image has no window of its own")
        return file_window
    if name == FULL_PRESET:
        return unit_window(STORED_LEVELS)
    if name == AUTO_PRESET:
        if stored is None:
            raise ValueError("the auto window needs the image")
        return auto_window(stored)
    if name in RADIOGRAPH_PRESETS:
        return RADIOGRAPH_PRESETS[name].window()
    raise ValueError(f"unknown window preset {name!r}; known: {preset_names(True)}")


# --- mouse drag -> window ------------------------------------------------------------------

MIN_WIDTH = 1.0
MAX_WIDTH = 2.0 * STORED_LEVELS
MIN_CENTER = -STORED_MAX / 2
MAX_CENTER = STORED_MAX * 1.5


@dataclass(frozen=True)
class DragMapping:
    """How a window/level drag maps screen pixels to the window.

    ``width_sign = +1``: dragging right widens the window (less contrast); -1 reverses it.
    ``level_sign = +1``: dragging down raises the level (center), so the image darkens;
    -1 reverses it. The width changes by a factor of 2 every ``pixels_per_doubling`` screen
    pixels, and the level moves by one current width every ``pixels_per_width`` pixels, so the
    feel is the same for narrow and wide windows.
    """

    width_sign: int = 1
    level_sign: int = 1
    pixels_per_doubling: float = 200.0
    pixels_per_width: float = 400.0

    def __post_init__(self) -> None:
        if self.width_sign not in (1, -1) or self.level_sign not in (1, -1):
            raise ValueError("drag directions must be +1 or -1")
        if self.pixels_per_doubling <= 0 or self.pixels_per_width <= 0:
            raise ValueError("drag sensitivities must be positive")


def drag_window(start: Window, dx: float, dy: float,
                mapping: DragMapping = DragMapping()) -> Window:
    """The window after a drag of (dx, dy) screen pixels (y down) that began at ``start``."""
    width = start.width * 2.0 ** (mapping.width_sign * dx / mapping.pixels_per_doubling)
    width = min(max(width, MIN_WIDTH), MAX_WIDTH)
    center = start.center + mapping.level_sign * dy * start.width / mapping.pixels_per_width
    center = min(max(center, MIN_CENTER), MAX_CENTER)
    return Window(center=center, width=width)


# --- histogram -----------------------------------------------------------------------------

def histogram(stored: np.ndarray, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Counts of stored values in ``bins`` equal bins over 0..65535; (edges [bins + 1], counts).

    ``bins`` must divide 65536 (a power of two up to 65536), which makes this an exact integer
    bin assignment (value // (65536 / bins)) done with one bincount.
    """
    if bins < 1 or STORED_LEVELS % bins:
        raise ValueError(f"bins must be a power of two that divides 65536, got {bins}")
    shift = int(math.log2(STORED_LEVELS // bins))
    counts = np.bincount(stored.ravel() >> shift, minlength=bins)
    edges = np.arange(bins + 1, dtype=np.float64) * (STORED_LEVELS // bins)
    return edges, counts
