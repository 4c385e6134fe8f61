"""What every paper figure shares: the page size, the black-on-white style, the series
colours, and an atomic PNG/PDF writer."""

from __future__ import annotations

import colorsys
import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cxrgan_desktop.core.fileio import atomic_writer

FIGURE_INCHES = (8.0, 6.0)
EXPORT_DPI = 150  # the PNG is 1200 x 900 px; the PDF is vector, 576 x 432 pt
EXPORT_SIZE = (round(FIGURE_INCHES[0] * EXPORT_DPI), round(FIGURE_INCHES[1] * EXPORT_DPI))
FORMATS = (".png", ".pdf")
GUIDE_GREY = (150 / 255, 150 / 255, 150 / 255)  # chance lines: present, never loud
GRID_ALPHA = 0.15
# TrueType fonts in the PDF (journals reject Type 3) and no creation date, so that the same
# data give the same bytes
_SAVE_RC = {"pdf.fonttype": 42, "svg.fonttype": "none"}
_METADATA = {".png": {"Software": "cxrgan-desktop"},
             ".pdf": {"Creator": "cxrgan-desktop", "CreationDate": None}}


def series_colour(index: int, count: int) -> tuple[float, float, float]:
    """Distinct, print-safe colours for ``count`` series (readers, experiment arms): evenly
    spaced hues at a saturation and value that stay dark enough on white paper (the hues
    pyqtgraph's ``intColor(index, hues=count, maxValue=200, sat=220)`` gave before)."""
    hue_degrees = (index % max(count, 1)) * 360 // max(count, 1)
    return colorsys.hsv_to_rgb(hue_degrees / 360, 220 / 255, 200 / 255)


def paper_figure(title: str, x_label: str, y_label: str) -> tuple[Figure, Axes]:
    """A white figure of FIGURE_INCHES with black text and axes and a faint grid. The
    constrained layout keeps titles and labels inside whatever size a window gives it."""
    figure = Figure(figsize=FIGURE_INCHES, facecolor="white", layout="constrained")
    axes = figure.add_subplot()
    axes.set_facecolor("white")
    axes.set_title(title, color="black", fontsize=13)
    axes.set_xlabel(x_label, color="black", fontsize=11)
    axes.set_ylabel(y_label, color="black", fontsize=11)
    axes.tick_params(colors="black", labelsize=10)
    for spine in axes.spines.values():
        spine.set_color("black")
    axes.grid(True, color="black", alpha=GRID_ALPHA, linewidth=0.6)
    axes.set_axisbelow(True)
    return figure, axes


def legend(axes: Axes, location: str) -> None:
    axes.legend(loc=location, frameon=True, facecolor="white", edgecolor="black",
                framealpha=0.86, fontsize=10, labelcolor="black")


def save_figure(figure: Figure, path: str | os.PathLike[str]) -> Path:
    """``figure`` as PNG (EXPORT_SIZE pixels) or vector PDF by the file's suffix, written
    atomically: a half-written figure never replaces a good one."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{target.name}: figures are saved as .png or .pdf")
    with matplotlib.rc_context(_SAVE_RC), atomic_writer(target, "wb") as handle:
        figure.savefig(handle, format=suffix[1:], dpi=EXPORT_DPI, facecolor="white",
                       metadata=_METADATA[suffix])
    return target


def write_figures(figures: Mapping[str, Figure], folder: str | os.PathLike[str]
                  ) -> list[Path]:
    """``{stem: figure}`` as ``stem.png`` and ``stem.pdf`` in ``folder``."""
    return [save_figure(figure, Path(folder) / f"{stem}{suffix}")
            for stem, figure in figures.items() for suffix in FORMATS]
