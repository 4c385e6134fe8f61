"""Atomic file writes and content hashes.

Every file the project writes (model files, images, manifests, answer sheets) goes through
here so that a crash or power cut never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success fsync and rename it into place.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    with _naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    try:
        with _naming(target):
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the file the usual permissions
                os.fchmod(fd, 0o666 & ~_UMASK)
            with os.fdopen(fd, mode) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(target.parent)


# A temporary file is ".<final name>.<8 random characters>.tmp" (tempfile.mkstemp's letters):
# recognisable, so that a job holding its folder's lock can remove the orphans a killed
# earlier run left (see remove_orphan_temps).
_TEMP_RE = re.compile(r"^\.(?P<final>.+)\.[a-z0-9_]{8}\.tmp$")


def temp_target(name: str) -> str | None:
    """The final file name a temporary file of :func:`atomic_writer` was for, else None."""
    match = _TEMP_RE.match(name)
    return match.group("final") if match else None


def remove_orphan_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder``; return them.

    Only call this while holding the folder's lock (:mod:`cxrgan_desktop.core.output_lock`):
    then no live writer owns a temporary file there, so every one is an orphan.
    """
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if temp_target(entry.name) is not None and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _write_temp(target: Path, mode: str, data: bytes | None) -> str:
    """Create the temporary file beside ``target`` (with the usual permissions); with
    ``data``, also write and fsync it. Returns its name."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; give the file the usual permissions
            os.fchmod(fd, 0o666 & ~_UMASK)
        if data is not None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    os.close(fd)
    return tmp_name


@contextlib.contextmanager
def _naming(target: Path) -> Iterator[None]:
    """Errors while writing a temporary file name the file the user asked for.

    ``handle.write`` raises OSError without a file name, and the temporary name means
    nothing to a user; a full disk should read ``<target>: no space left on device``.
    """
    try:
        yield
    except OSError as error:
        if error.filename is None or temp_target(Path(str(error.filename)).name) is not None:
            raise OSError(error.errno, error.strerror or str(error), str(target)) from error
        raise


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """Write several files so that a full disk changes none of them.

    Every temporary file is written and fsynced before the first rename, so running out of
    space (the usual failure) leaves all the old versions. Only a kill between the renames
    (microseconds) can leave some replaced; jobs that use this rebuild their files on rerun.
    """
    written: list[tuple[str, Path]] = []
    try:
        for target, data in files.items():
            with _naming(target):
                written.append((_write_temp(target, "wb", data), target))
        for tmp_name, target in written:
            with _naming(target):
                os.replace(tmp_name, target)
    except BaseException:
        for tmp_name, _ in written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        raise
    for folder in {target.parent for target in files}:
        _fsync_directory(folder)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, not thread-safe


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every platform allows it)."""
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_writer(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_writer(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object from a file this application wrote (a lock, a cache record), or None
    when the file is missing, unreadable, not JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so multi-GB checkpoints do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# errno values that mean "this place will not take the file": the user has to free space or
# choose another folder, and a traceback would only hide that.
DISK_ERRORS = {errno.ENOSPC: "no space left on device", errno.EROFS: "read-only file system",
               getattr(errno, "EDQUOT", -1): "disk quota exceeded",
               errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}


def disk_error_message(error: BaseException) -> str | None:
    """``"<path>: no space left on device"`` for a full, read-only or forbidden place, else
    None. Both faces (the CLI's main and the GUI's job runner) show this one line."""
    if not isinstance(error, OSError) or error.errno not in DISK_ERRORS:
        return None
    if error.filename is None:  # e.g. an fsync deep in a library: say so, not "None"
        return f"{DISK_ERRORS[error.errno]} (while writing a file the system did not name)"
    return f"{os.fsdecode(error.filename)}: {DISK_ERRORS[error.errno]}"
