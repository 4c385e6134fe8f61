"""Read any supported image file into the library's convention, with a record of how.

``read_image(path)`` returns a :class:`LoadedImage`: float32 H x W pixels in [0, 1]
(0 = black, MONOCHROME2 sense) plus what a report needs (format, size, photometric
interpretation, how values were normalised, SOP Instance UID, warnings). Every failure is an
:class:`ImageReadError` naming the file and the problem; :func:`scan_images` walks folders
and reports unreadable files instead of stopping.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxrgan_desktop.jobs import ProgressFn, check_cancel, no_progress

RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}


class ImageReadError(Exception):
    """A file that cannot be read as an image; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # [H, W] float32 in [0, 1], 0 = black
    source: Path
    file_format: str  # "DICOM", "PNG", "JPEG", "TIFF"
    photometric: str  # DICOM Photometric Interpretation, or the raster's mode
    normalisation: str  # how stored values became [0, 1]
    sop_instance_uid: str | None = None
    modality: str | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def is_dicom_file(path: Path) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_image(path: str | os.PathLike[str]) -> LoadedImage:
    """Read a PNG, JPEG, TIFF or DICOM file (decided by content, not only by name)."""
    file = Path(path)
    if not file.is_file():
        raise ImageReadError(file, "no such file")
    if file.stat().st_size == 0:
        raise ImageReadError(file, "the file is empty")
    if is_dicom_file(file) or file.suffix.lower() in DICOM_SUFFIXES:
        from cxrgan_desktop.imaging.dicom_reader import read_dicom

        return read_dicom(file)
    from cxrgan_desktop.imaging.raster_reader import read_raster

    return read_raster(file)


def is_candidate(path: Path) -> bool:
    """Worth trying: a known image suffix, or DICOM content (PACS exports often lack one)."""
    suffix = path.suffix.lower()
    return suffix in RASTER_SUFFIXES or suffix in DICOM_SUFFIXES or is_dicom_file(path)


def iter_files(inputs: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Files named, and files below folders named (recursive, sorted, hidden ones skipped)."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith("."):
                        yield Path(root) / name
        else:
            yield path


def image_files(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The existing files below ``inputs`` worth trying as images (see :func:`is_candidate`)."""
    return [p for p in iter_files(inputs) if p.is_file() and is_candidate(p)]


@dataclass(frozen=True)
class Skipped:
    source: Path
    reason: str


def scan_images(inputs: Iterable[str | os.PathLike[str]], progress: ProgressFn = no_progress,
                cancel: threading.Event | None = None
                ) -> Iterator[LoadedImage | Skipped]:
    """Read every image under ``inputs``; unreadable or non-image files come out as
    :class:`Skipped` with the reason, so one bad file never aborts a scan."""
    files = list(iter_files(inputs))
    for done, path in enumerate(files):
        check_cancel(cancel)
        if not path.exists():
            yield Skipped(path, "no such file or folder")
        elif not is_candidate(path):
            yield Skipped(path, "not an image file (unknown type)")
        else:
            try:
                yield read_image(path)
            except ImageReadError as error:
                yield Skipped(path, error.problem)
        progress((done + 1) / max(len(files), 1), f"{done + 1}/{len(files)} files")
