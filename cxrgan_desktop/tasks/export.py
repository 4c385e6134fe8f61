"""Export a session's images: the GUI's Save/Export, for generated and opened images alike.

Formats: 16-bit PNG (with a JSON provenance sidecar for synthetic images), 8-bit PNG of the
window on screen (for slides), and DICOM Secondary Capture carrying the window on screen.
DICOM export is for generated images only: its files are marked synthetic, and a real
radiograph must never leave this application labelled as one.

With a memorisation audit (``exclude``), an image whose pixels (or file) the audit flagged is
not exported; the result lists it, and the audit's record says what was left out.

A truncated image (psi < 1, :mod:`cxrgan_desktop.engine.truncation`) is not the image its
seed and index alone make: its provenance (DICOM Image Comments, the PNG sidecar) names psi.
An image rendered from a stored latent (a projection of a radiograph, the Findings tab)
names that latent's file instead of a seed, and one projected from a radiograph says it is
derived from it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.imaging.dicom_export import export_dicom, export_png16_with_sidecar
from cxrgan_desktop.imaging.display import display_bytes, to_stored
from cxrgan_desktop.imaging.pixel_hash import pixel_sha256
from cxrgan_desktop.imaging.png16 import write_png8, write_png16
from cxrgan_desktop.imaging.readers import ImageReadError, Skipped, read_image
from cxrgan_desktop.imaging.synthetic_provenance import (
    LCOInfo,
    ProjectionSource,
    SyntheticImageInfo,
    SyntheticSeries,
    new_synthetic_series,
)
from cxrgan_desktop.imaging.windowing import Window
from cxrgan_desktop.tasks.audit_file import FlaggedImages

EXPORT_FORMATS = {
    "png16": "16-bit PNG (lossless; JSON sidecar with provenance for generated images)",
    "png8": "8-bit PNG of the window on screen (for slides)",
    "dicom": "DICOM Secondary Capture, marked synthetic, with the window on screen "
             "(generated images only)",
}
SUFFIXES = {"png16": ".png", "png8": ".png", "dicom": ".dcm"}


@dataclass(frozen=True)
class ExportItem:
    """One image of the session. A real (opened) image has neither ``seed`` nor
    ``latents_source``."""

    source: Path
    name: str
    model_name: str = ""
    model_sha256: str = ""
    seed: int | None = None
    index: int = 0
    lco: LCOInfo | None = None  # how latent class optimisation chose it, if it did
    truncation: float = 1.0  # psi the image was rendered with (1: none)
    latents_source: str | None = None  # a latents file whose row ``index`` made the image
    derived_from: ProjectionSource | None = None  # projected from this real radiograph

    @property
    def synthetic(self) -> bool:
        return self.seed is not None or self.latents_source is not None


def image_info(item: ExportItem, window: Window) -> SyntheticImageInfo:
    """The provenance record of a synthetic item (psi named only when it is not 1: see
    :class:`SyntheticImageInfo`)."""
    return SyntheticImageInfo(item.index, seed=item.seed, latents_source=item.latents_source,
                              lco=item.lco, window=window, window_explanation="USER",
                              derived_from=item.derived_from,
                              truncation=float(item.truncation))


@dataclass(frozen=True)
class ExportResult:
    written: list[Path]
    skipped: list[Skipped]  # images that could no longer be read (moved, damaged), and why
    excluded: list[Path] = field(default_factory=list)  # sources an audit flagged: not written
    audit: dict[str, Any] | None = None  # the audit used and what it left out, or None


def export_items(items: Sequence[ExportItem], out_dir: str | Path, image_format: str,
                 window: Window, inverted: bool = False, progress: ProgressFn = no_progress,
                 cancel: threading.Event | None = None,
                 exclude: FlaggedImages | None = None) -> ExportResult:
    """Write each item to ``out_dir`` in ``image_format``. An image that can no longer be
    read (its file moved or damaged since it was opened) is listed in ``skipped`` and the
    rest are exported; one whose pixels or file ``exclude`` flagged is listed in
    ``excluded`` and not written."""
    if image_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {image_format!r}; choose from "
                         f"{sorted(EXPORT_FORMATS)}")
    real = [item.name for item in items if not item.synthetic]
    if image_format == "dicom" and real:
        raise ValueError("DICOM export marks files as synthetic, so it is for generated images "
                         f"only; these are real images: {', '.join(real)}. Export them as PNG.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    series: dict[tuple[str, str], SyntheticSeries] = {}  # one series per model in the batch
    written: list[Path] = []
    skipped: list[Skipped] = []
    excluded: list[Path] = []
    for done, item in enumerate(items):
        check_cancel(cancel)
        try:
            pixels = read_image(item.source).pixels
        except ImageReadError as error:
            skipped.append(Skipped(item.source, error.problem))
            continue
        if exclude is not None and exclude.is_flagged(item.source, pixel_sha256(pixels)):
            excluded.append(item.source)
            continue
        path = out / f"{item.name}{SUFFIXES[image_format]}"
        if image_format == "png8":
            write_png8(path, display_bytes(to_stored(pixels), window, inverted))
        elif item.synthetic:
            key = (item.model_name, item.model_sha256)
            if key not in series:
                series[key] = new_synthetic_series(item.model_name, item.model_sha256)
            info = image_info(item, window)
            writer = export_dicom if image_format == "dicom" else export_png16_with_sidecar
            writer(path, pixels, series[key], info)
        else:
            write_png16(path, pixels)
        written.append(path)
        progress((done + 1) / len(items), f"{done + 1}/{len(items)} exported")
    audit = None if exclude is None else exclude.record([str(p) for p in excluded])
    return ExportResult(written, skipped, excluded, audit)

