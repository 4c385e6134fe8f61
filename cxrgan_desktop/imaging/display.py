"""Display mapping for the image viewer: pure numpy, no Qt.

The viewer shows a library image (float32 H x W in [0, 1], 0 = black) in 16-bit stored-value
units: ``stored = round(65535 * pixel)``, the value a 16-bit PNG or DICOM export writes (as
:func:`cxrgan_desktop.imaging.png16.to_uint16` computes it). Window Center / Width are in
those units, and the display byte of every pixel is

    round(apply_window(stored, window, 0, 255))          (255 minus that when inverted)

with :func:`cxrgan_desktop.imaging.windowing.apply_window`, the project's one VOI function.
For speed the function is evaluated once per window on all 65536 stored values (a lookup
table) and the image is indexed through it; the result is the same number for every pixel.

**Display units.** The numbers a user reads and types (Level, Width, the histogram's axis, the
pixel read-out) are not the stored values but the image's own units, a linear map of them
(:class:`DisplayUnits`): modality units (stored values after the Modality LUT) for a DICOM
whose reader normalised linearly, 8-bit values for 8-bit rasters, 16-bit values otherwise.
The library's pixels stay float32 [0, 1]; only the viewer converts, and the window it
applies is always the stored-unit one (:meth:`DisplayUnits.to_stored`). A DICOM's pixels are
its modality values clipped to the window the reader normalised with (the header's first, or
percentiles), so values outside that window read as its edges.

Also here: the window presets (relative to the image), the mouse-drag-to-window mapping and
the histogram.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrgan_desktop.imaging.readers import LoadedImage
from cxrgan_desktop.imaging.windowing import Window, apply_window, percentile_window, unit_window

STORED_LEVELS = 65536  # 16-bit stored values 0..65535
STORED_MAX = STORED_LEVELS - 1

FILE_PRESET = "File window"
DICOM_DEFAULT = "DICOM default"
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


# --- display units -------------------------------------------------------------------------

@dataclass(frozen=True)
class DisplayUnits:
    """The units a user reads and types: ``value = offset + scale * stored``.

    ``scale`` is negative when stored 0 (black) is the highest value (a MONOCHROME1 DICOM,
    whose reader inverted it). ``decimals`` is how many places a pixel value is shown with.
    The identity (offset 0, scale 1) converts windows unchanged, so 16-bit images keep the
    exact numbers typed.
    """

    offset: float = 0.0
    scale: float = 1.0
    name: str = "16-bit value"
    decimals: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.offset) and np.isfinite(self.scale) and self.scale != 0):
            raise ValueError(f"display units need a finite non-zero scale, got {self.scale}")

    @classmethod
    def from_range(cls, at_black: float, at_white: float, name: str,
                   decimals: int | None = None) -> DisplayUnits:
        """Units in which pixel 0 reads ``at_black`` and pixel 1 reads ``at_white``.
        Without ``decimals``, as many places as one stored step resolves."""
        scale = (at_white - at_black) / STORED_MAX
        resolved = max(0, math.floor(-math.log10(abs(scale)))) if scale else 0
        places = resolved if decimals is None else min(decimals, resolved)
        return cls(offset=float(at_black), scale=scale, name=name, decimals=places)

    @property
    def is_identity(self) -> bool:
        return self.offset == 0.0 and self.scale == 1.0

    def value(self, stored: float) -> float:
        """The display value of a stored value."""
        return self.offset + self.scale * stored

    def stored(self, value: float) -> float:
        """The (fractional) stored value of a display value."""
        return (value - self.offset) / self.scale

    def span(self) -> tuple[float, float]:
        """The display values of stored 0 and 65535, lowest first."""
        ends = (self.value(0.0), self.value(float(STORED_MAX)))
        return min(ends), max(ends)

    def to_display(self, window: Window) -> Window:
        """A stored-unit window in display units (the same ramp, end to end)."""
        if self.is_identity:
            return window
        ends = sorted((self.value(window.low), self.value(window.high)))
        return Window.from_bounds(ends[0], ends[1])

    def to_stored(self, window: Window) -> Window:
        """A display-unit window as the stored-unit window the viewer applies."""
        if self.is_identity:
            return window
        ends = sorted((self.stored(window.low), self.stored(window.high)))
        return Window.from_bounds(ends[0], ends[1])

    def format(self, value: float, extra: int = 0) -> str:
        """``value`` with this unit's decimals (+ ``extra``), trailing zeros dropped."""
        places = self.decimals + extra
        text = f"{value:.{places}f}"
        if places > 0:
            text = text.rstrip("0").rstrip(".")
        return "0" if text == "-0" else text


SIXTEEN_BIT = DisplayUnits()


@dataclass(frozen=True)
class NamedWindow:
    """A window the image brings with it (in display units), e.g. a DICOM header's."""

    name: str
    window: Window


@dataclass(frozen=True)
class DisplayInfo:
    """How to show one image: its units, its own windows (the first is the default) and the
    lines the viewer's corner overlay starts with (modality; model and seed)."""

    units: DisplayUnits = SIXTEEN_BIT
    windows: tuple[NamedWindow, ...] = ()
    caption: tuple[str, ...] = ()


def display_info(image: LoadedImage, details: Mapping[str, Any] | None = None) -> DisplayInfo:
    """The :class:`DisplayInfo` of a read image; ``details`` are a session entry's (a
    generated image has 'model_name', 'seed' and 'index').

    DICOM with a linear normalisation: modality units, and one "DICOM default N" window per
    header Window Center/Width. A VOI LUT was applied when reading, so its "DICOM default" is
    the full stored range and the units stay 16-bit. 8-bit rasters read in 0-255.
    """
    details = details or {}
    units, windows = SIXTEEN_BIT, []
    caption = [f"{image.modality or 'DICOM'}  {image.photometric}"
               if image.file_format == "DICOM" else f"{image.file_format}  {image.photometric}"]
    if image.file_format == "DICOM":
        if image.modality_range is not None and image.modality_range[0] != image.modality_range[1]:
            units = DisplayUnits.from_range(*image.modality_range, name="modality units",
                                            decimals=image.modality_decimals)
            for number, (center, width, text) in enumerate(image.voi_windows, start=1):
                windows.append(NamedWindow(_default_name(number, text), Window(center, width)))
        elif image.voi_lut is not None:
            windows.append(NamedWindow(_default_name(1, f"VOI LUT {image.voi_lut}".strip()),
                                       unit_window()))
    elif image.photometric in ("L", "LA", "P", "RGB", "RGBA", "1"):
        units = DisplayUnits.from_range(0.0, 255.0, name="8-bit value", decimals=0)
    if "seed" in details:
        caption = [f"synthetic  {details.get('model_name', '')}".rstrip(),
                   f"seed {details['seed']}  #{details.get('index', 0)}"]
    return DisplayInfo(units=units, windows=tuple(windows), caption=tuple(caption))


def _default_name(number: int, explanation: str) -> str:
    name = f"{DICOM_DEFAULT} {number}"
    return f"{name}: {explanation}" if explanation else name


# --- presets -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PercentilePreset:
    """A window from ``low`` to ``high`` percentile of the image's brightness (0 = black),
    over the central region (``central``: the middle 60 % of rows and of columns, where a
    PA chest radiograph has its lung fields and mediastinum, not the collimation, markers
    or background) or over the whole image."""

    low: float
    high: float
    central: bool
    note: str

    def window(self, stored: np.ndarray) -> Window:
        region = central_region(stored) if self.central else stored
        return _percentile_bounds(region, self.low, self.high)


def central_region(image: np.ndarray, fraction: float = 0.6) -> np.ndarray:
    """The middle ``fraction`` of rows and of columns (a view, no copy)."""
    height, width = image.shape
    top, left = round(height * (1 - fraction) / 2), round(width * (1 - fraction) / 2)
    return image[top:max(height - top, top + 1), left:max(width - left, left + 1)]


def _percentile_bounds(values: np.ndarray, low: float, high: float) -> Window:
    lo, hi = np.percentile(values, [low, high])
    return Window.from_bounds(float(lo), float(max(hi, lo + 1.0)))


# Windows relative to the image, for chest radiographs (CR/DX, and GAN outputs like them);
# chosen by looking at pydicom-data's RG1 (a PA chest, CR, MONOCHROME1) in each.
# A radiograph has no calibrated unit (unlike CT's Hounsfield units), so a fixed number or a
# fixed fraction of the range means something different on every detector; these follow the
# image's own brightness distribution instead. Percentiles are of brightness (0 = black:
# lungs dark, bone bright), so they mean the same for MONOCHROME1 and MONOCHROME2 files.
RADIOGRAPH_PRESETS: dict[str, PercentilePreset] = {
    "Lung": PercentilePreset(0.5, 70.0, True, "the darker 70 % of the central region (lung "
                             "fields, hila, the edge of the mediastinum) spread over the grey "
                             "scale: vessels and fissures; heart and bone white"),
    "Mediastinum": PercentilePreset(40.0, 99.5, True, "the brighter 60 % of the central "
                                    "region: heart borders, mediastinum, lines and tubes, the "
                                    "spine behind the heart; lungs black"),
    "Bone": PercentilePreset(20.0, 99.0, True, "most of the central region with the darkest "
                             "fifth black: ribs over the lungs, clavicles, spine"),
    "High contrast": PercentilePreset(25.0, 75.0, True, "the middle half of the central "
                                      "region's values, a steep ramp"),
}


def preset_names(windows: tuple[NamedWindow, ...] | bool = ()) -> list[str]:
    """The preset names in menu order: the image's own windows first (a legacy ``True``
    stands for one "File window"), then the presets relative to the image."""
    if isinstance(windows, bool):
        names = [FILE_PRESET] if windows else []
    else:
        names = [named.name for named in windows]
    return [*names, FULL_PRESET, AUTO_PRESET, *RADIOGRAPH_PRESETS]


def auto_window(stored: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> Window:
    """Percentile window of the stored values (on a 1-in-4 subsample above 256 x 256)."""
    sample = stored[::2, ::2] if stored.size > 65536 else stored
    return percentile_window(sample, low_pct, high_pct)


def full_window(stored: np.ndarray) -> Window:
    """From the image's darkest to its brightest stored value."""
    return Window.from_bounds(float(stored.min()), float(max(stored.max(), stored.min() + 1)))


def preset_window(name: str, stored: np.ndarray | None = None,
                  file_window: Window | None = None) -> Window:
    """The stored-unit window a preset names, computed from ``stored`` (the image)."""
    if name == FILE_PRESET:
        if file_window is None:
            raise ValueError("this image has no window of its own")
        return file_window
    if name not in (FULL_PRESET, AUTO_PRESET, *RADIOGRAPH_PRESETS):
        raise ValueError(f"unknown window preset {name!r}; known: {preset_names()}")
    if stored is None:
        if name == FULL_PRESET:
            return unit_window(STORED_LEVELS)
        raise ValueError(f"the {name} preset is relative to the image and needs it")
    if name == FULL_PRESET:
        return full_window(stored)
    if name == AUTO_PRESET:
        return auto_window(stored)
    return RADIOGRAPH_PRESETS[name].window(stored)


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
