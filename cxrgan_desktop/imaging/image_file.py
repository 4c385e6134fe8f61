"""One image file, before any decoder sees it: opening it safely (``stat`` first, then
``O_NONBLOCK``, so a pipe or a device is reported rather than waited on), the error that names
the file and what went wrong, and the record of a read image.

Why a module of its own: the DICOM and raster decoders use these, and the dispatcher
(``readers``) uses the decoders; with these in ``readers`` the three imported each other.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

AnyPath = str | bytes | os.PathLike[str]


def display_path(path: AnyPath) -> str:
    """``path`` as text that can always be printed and written as UTF-8.

    POSIX file names are bytes; Python keeps undecodable ones as lone surrogates, which
    crash ``print`` and UTF-8 writes. Here such bytes become ``\\xNN`` escapes instead.
    """
    text = os.fsdecode(path)
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeError:  # a surrogate that did not come from a file name
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class ImageReadError(Exception):
    """A file that cannot be read as an image; the message names the file and the problem.

    ``path`` keeps the name as given (it may hold undecodable bytes as surrogates); the
    message uses :func:`display_path`, so printing an error never fails.
    """

    def __init__(self, path: AnyPath, problem: str) -> None:
        self.path = os.fsdecode(path)
        self.problem = " ".join(problem.split())  # one line: reports list one file a line
        super().__init__(f"{display_path(self.path)}: {problem}")


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
    # DICOM only, for showing the image in the file's own units (the viewer; see
    # imaging/display.py): the modality-unit values (stored values after the Modality LUT)
    # that became pixel 0 and pixel 1 when normalisation was linear (reversed for
    # MONOCHROME1), else None; every Window Center/Width of the header in modality units with
    # its explanation; the explanation of the VOI LUT the pixels went through (None: no LUT);
    # the decimal places that write every modality value (None: unknown, float data).
    modality_range: tuple[float, float] | None = None
    voi_windows: tuple[tuple[float, float, str], ...] = ()
    voi_lut: str | None = None
    modality_decimals: int | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


# -- why a file cannot be opened ------------------------------------------------------------

_ERRNO_REASONS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied (operation not permitted)",
    errno.ENAMETOOLONG: "file name too long",
    errno.EISDIR: "a folder, not a file",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.ELOOP: "too many levels of symbolic links (a link loop)",
    errno.EIO: "input/output error while reading (a failing disk or network share?)",
    errno.EMFILE: "too many open files in this process",
    errno.ENFILE: "too many open files on this system",
    errno.ENOMEM: "not enough memory",
    errno.ENXIO: "no such device (a device or socket file)",
    errno.ENODEV: "no such device",
    errno.ETIMEDOUT: "timed out (a network share?)",
    errno.ESTALE: "stale file handle (a network share changed under the reader)",
    errno.EAGAIN: "the file is not ready to be read (a pipe or device)",
}


def os_error_reason(error: OSError) -> str:
    """A short, specific reason for an ``OSError`` from opening or reading a file.

    Decoders (Pillow) raise ``OSError`` without an errno for damaged data; those keep their
    own message, since it says what is wrong with the bytes.
    """
    if error.errno is None:
        return str(error) or type(error).__name__
    reason = _ERRNO_REASONS.get(error.errno)
    if reason is None:
        reason = (error.strerror or os.strerror(error.errno)).lower()
    return reason


def _kind_problem(mode: int) -> str | None:
    """Why a ``stat`` mode is not a file to read (None: a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    for test, kind in ((stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return f"not a regular file: {kind}"
    return "not a regular file"


def _name_problem(error: Exception) -> str:
    if isinstance(error, UnicodeError):
        return "the file name cannot be encoded for this file system (invalid characters)"
    return f"invalid file name ({error})"  # e.g. an embedded NUL


def file_problem(path: AnyPath) -> str | None:
    """Why ``path`` is not a readable regular file with content, without opening it (None:
    it is one). ``stat`` never blocks, so pipes and devices are told apart before any open."""
    try:
        info = os.stat(path)
    except OSError as error:
        if error.errno == errno.ENOENT and os.path.islink(path):
            return "a broken symbolic link (its target does not exist)"
        return os_error_reason(error)
    except (UnicodeError, ValueError) as error:
        return _name_problem(error)
    kind = _kind_problem(info.st_mode)
    if kind is not None:
        return kind
    if info.st_size == 0:
        return "the file is empty"
    return None


def open_image_file(path: AnyPath) -> BinaryIO:
    """Open ``path`` for reading, or raise :class:`ImageReadError` saying why not.

    ``stat`` first (a FIFO or device is refused before any open), then ``O_NONBLOCK`` and a
    second check on the open descriptor, so a file swapped for a pipe in between cannot
    block the reader either.
    """
    problem = file_problem(path)
    if problem is not None:
        raise ImageReadError(path, problem)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        raise ImageReadError(path, os_error_reason(error)) from error
    except (UnicodeError, ValueError) as error:
        raise ImageReadError(path, _name_problem(error)) from error
    try:
        info = os.fstat(fd)
        problem = _kind_problem(info.st_mode) or (
            "the file is empty" if info.st_size == 0 else None)
        if problem is not None:
            raise ImageReadError(path, problem)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def require_finite(path: AnyPath, values: np.ndarray, what: str = "pixel values") -> None:
    """Refuse NaN or infinite values: windowing would turn them into silent black or white."""
    finite = np.isfinite(values)
    if not finite.all():
        bad = int(values.size - np.count_nonzero(finite))
        raise ImageReadError(path, f"{bad} of {values.size} {what} are not finite numbers "
                             "(NaN or infinity); refusing rather than guessing")
