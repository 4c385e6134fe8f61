"""Read any supported image file into the library's convention, with a record of how.

``read_image(path)`` returns a :class:`LoadedImage`: float32 H x W pixels in [0, 1]
(0 = black, MONOCHROME2 sense) plus what a report needs (format, size, photometric
interpretation, how values were normalised, SOP Instance UID, warnings).

The guarantee every batch relies on: whatever goes wrong while reading one file (the
operating system refusing it, a decoder tripping over damaged bytes, absurd sizes, values
that decode but make no image) comes out of :func:`read_image` as an :class:`ImageReadError`
naming the file and what happened, never as another exception. :func:`scan_images` walks
folders and yields every file either read or as :class:`Skipped` with its reason, so one bad
file never stops a convert, a training cache, a study build, an FID folder or the window's
Open.

Files are opened once, without blocking (``O_NONBLOCK``) and only after ``stat`` says they
are regular files, so a named pipe or a device among the inputs is reported, not waited on.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.imaging.image_file import (
    AnyPath,
    ImageReadError,
    LoadedImage,
    display_path,
    file_problem,
    open_image_file,
    os_error_reason,
    require_finite,
)

RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
UNKNOWN_TYPE = "not an image file (unknown type)"

def missing_inputs(inputs: Iterable[AnyPath]) -> list[str]:
    """The named inputs that do not exist, for display: checked before slow work starts, so
    a typo costs one line, not a wait."""
    return [display_path(p) for p in inputs if file_problem(p) == "no such file"]


def _is_dicom_head(head: bytes) -> bool:
    return len(head) == 132 and head[128:132] == b"DICM"


# -- reading one file -----------------------------------------------------------------------

def read_image(path: AnyPath) -> LoadedImage:
    """Read a PNG, JPEG, TIFF or DICOM file (decided by content, not only by name).

    Raises :class:`ImageReadError` for every failure of this one file, with a reason that
    says what happened (permission denied, not a regular file, damaged data, an image too
    large, values that are not finite ...). Only ``KeyboardInterrupt``/``SystemExit`` and
    the like pass through unchanged.
    """
    file = Path(os.fsdecode(path))
    try:
        with open_image_file(file) as handle:
            dicom = _is_dicom_head(handle.read(132))
            handle.seek(0)
            if dicom or file.suffix.lower() in DICOM_SUFFIXES:
                from cxrgan_desktop.imaging.dicom_reader import read_dicom

                image = read_dicom(file, handle)
            else:
                from cxrgan_desktop.imaging.raster_reader import read_raster

                image = read_raster(file, handle)
    except ImageReadError:
        raise
    except MemoryError as error:
        raise ImageReadError(file, "not enough memory to decode it (the file claims a "
                             "huge image)") from error
    except OSError as error:  # the disk, not the data: EIO, a vanished network share ...
        raise ImageReadError(file, os_error_reason(error)) from error
    except RecursionError as error:
        raise ImageReadError(file, "damaged file (nesting too deep to parse)") from error
    except Exception as error:  # a decoder can fail in any way on crafted bytes
        raise ImageReadError(file, f"cannot be decoded ({type(error).__name__}: "
                             f"{error})") from error
    return _validated(image)


def _validated(image: LoadedImage) -> LoadedImage:
    """The library's contract for every read image: 2-D, float32, finite, in [0, 1]."""
    pixels = image.pixels
    if pixels.ndim != 2 or min(pixels.shape) < 1:
        raise ImageReadError(image.source, f"decoded to an array of shape {pixels.shape}, "
                             "not a 2-D image")
    if pixels.dtype != np.float32:
        raise ImageReadError(image.source, f"decoded to {pixels.dtype}, expected float32")
    require_finite(image.source, pixels, "normalised pixel values")
    if pixels.min() < 0.0 or pixels.max() > 1.0:
        raise ImageReadError(image.source, "normalised pixel values fall outside [0, 1]")
    return image


# -- batches --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Skipped:
    """A file (or folder) of a batch that was not read, and why.

    ``not_an_image`` marks what is left out by design rather than by failure (a hidden file,
    a file of a known non-image type such as a CSV beside the images): a full report lists
    it, a warning about unreadable images need not count it.
    """

    source: Path
    reason: str
    not_an_image: bool = False

    @property
    def shown(self) -> str:
        """The source as printable text (see :func:`display_path`)."""
        return display_path(self.source)

    def __str__(self) -> str:
        return f"{self.shown}: {self.reason}"


def is_folder(path: Path) -> bool:
    """``Path.is_dir`` without its exceptions (it raises for a too long name)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def iter_entries(inputs: Iterable[AnyPath]) -> Iterator[Path | Skipped]:
    """Every file named, and every file below folders named (recursive, sorted), as a path;
    what is not searched comes out as :class:`Skipped` instead of vanishing: hidden files
    and folders, folders that cannot be listed, links to folders (not followed, so a link
    loop cannot recurse forever)."""
    for item in inputs:
        path = Path(os.fsdecode(item))
        if not is_folder(path):
            yield path
            continue
        unlisted: list[OSError] = []
        for root, dirs, files in os.walk(path, onerror=unlisted.append):
            while unlisted:
                error = unlisted.pop(0)
                where = Path(error.filename) if error.filename else Path(root)
                yield Skipped(where, f"folder not searched: {os_error_reason(error)}")
            here = Path(root)
            keep = []
            for name in sorted(dirs):
                if name.startswith("."):
                    yield Skipped(here / name, "hidden folder, not searched", True)
                elif os.path.islink(here / name):
                    yield Skipped(here / name, "a link to a folder, not followed")
                else:
                    keep.append(name)
            dirs[:] = keep
            for name in sorted(files):
                if name.startswith("."):
                    yield Skipped(here / name, "hidden file, not read", True)
                else:
                    yield here / name
        while unlisted:  # the top folder itself could not be listed
            error = unlisted.pop(0)
            yield Skipped(Path(error.filename or path),
                          f"folder not searched: {os_error_reason(error)}")


def iter_files(inputs: Iterable[AnyPath]) -> Iterator[Path]:
    """The paths of :func:`iter_entries` (what it lists as skipped is left out)."""
    for entry in iter_entries(inputs):
        if isinstance(entry, Path):
            yield entry


def candidate_problem(path: Path) -> str | None:
    """Why ``path`` is not worth reading as an image (None: it is): missing, not a regular
    file, empty, unreadable, or of an unknown type."""
    problem = file_problem(path)
    if problem is not None:
        return problem
    if path.suffix.lower() in RASTER_SUFFIXES | DICOM_SUFFIXES:
        return None
    try:
        with open_image_file(path) as handle:
            head = handle.read(132)
    except ImageReadError as error:
        return error.problem
    except OSError as error:
        return os_error_reason(error)
    return None if _is_dicom_head(head) else UNKNOWN_TYPE


def sort_image_files(inputs: Iterable[AnyPath]) -> tuple[list[Path], list[Skipped]]:
    """The files below ``inputs`` worth reading as images, and every other path with the
    reason it is not (so a batch can list it instead of losing it silently)."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    for entry in iter_entries(inputs):
        if isinstance(entry, Skipped):
            skipped.append(entry)
            continue
        problem = candidate_problem(entry)
        if problem is None:
            files.append(entry)
        else:
            skipped.append(Skipped(entry, problem, problem == UNKNOWN_TYPE))
    return files, skipped


def image_files(inputs: Iterable[AnyPath]) -> list[Path]:
    """The files below ``inputs`` that are images or may be, for callers that read each
    with :func:`read_image` and report its :class:`ImageReadError`: files of an image type
    that cannot be read (empty, a pipe, permission denied ...) are included, so that the
    caller lists them with the reason; only files of a known non-image type (and what
    :func:`iter_entries` does not search) are left out. :func:`sort_image_files` lists
    those too."""
    return [path for path in iter_files(inputs) if candidate_problem(path) != UNKNOWN_TYPE]


def read_or_skip(path: Path) -> LoadedImage | Skipped:
    """One file of a batch: the image, or :class:`Skipped` with the reason."""
    problem = candidate_problem(path)
    if problem is not None:
        return Skipped(path, problem, problem == UNKNOWN_TYPE)
    try:
        return read_image(path)
    except ImageReadError as error:
        return Skipped(path, error.problem)


def scan_images(inputs: Iterable[AnyPath], progress: ProgressFn = no_progress,
                cancel: threading.Event | None = None
                ) -> Iterator[LoadedImage | Skipped]:
    """Read every image under ``inputs``; unreadable or non-image files come out as
    :class:`Skipped` with the reason, so one bad file never aborts a scan. Every path below
    the inputs comes out exactly once."""
    entries = list(iter_entries(inputs))
    for done, entry in enumerate(entries):
        check_cancel(cancel)
        yield entry if isinstance(entry, Skipped) else read_or_skip(entry)
        progress((done + 1) / max(len(entries), 1), f"{done + 1}/{len(entries)} files")
