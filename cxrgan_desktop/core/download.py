"""Fetch a file over HTTP(S) into place, whole or not at all.

Shared by the FID weights and the known models. The file streams into a temporary name in the
target's folder and is renamed only when every byte announced arrived and, where the caller
knows it, the SHA-256 matches; an interrupted, cancelled or damaged download leaves nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress

try:
    import fcntl
except ImportError:  # Windows: stale temporaries are recognised by age instead
    fcntl = None  # type: ignore[assignment]

CHUNK = 1 << 16
PART_SUFFIX = ".part"
STALE_AFTER_S = 3600.0


class DownloadFailed(Exception):
    """The transfer failed or was incomplete: the message names the URL and the reason."""


class DownloadDamaged(Exception):
    """The whole file arrived but is not the expected one (wrong SHA-256)."""


@contextlib.contextmanager
def temporary_beside(target: Path) -> Iterator[Path]:
    """A temporary ``.<name>.<random>.part`` in the target's folder (so the final rename is
    atomic), removed on any failure. While in use it holds an advisory lock, by which
    :func:`clear_stale_parts` tells it from the leftover of a run that was killed."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PART_SUFFIX, dir=target.parent)
    _lock(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        os.close(fd)


@contextlib.contextmanager
def temporary_folder(parent: Path, prefix: str) -> Iterator[Path]:
    """A ``<prefix><random>.part`` folder in ``parent`` for one run's downloads and unpacked
    files, removed with everything in it at the end; locked like :func:`temporary_beside`."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=PART_SUFFIX, dir=parent))
    fd = os.open(folder, os.O_RDONLY)
    _lock(fd)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.close(fd)


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _in_use(path: Path) -> bool:
    """Whether a live run holds ``path`` (its lock); without flock (Windows), whether it was
    modified within :data:`STALE_AFTER_S`."""
    if fcntl is None:
        try:
            return time.time() - path.stat().st_mtime < STALE_AFTER_S
        except OSError:
            return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # gone already, or unreadable: nobody's live work
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock
    return False


def clear_stale_parts(folder: Path) -> list[Path]:
    """Remove the ``.part`` files and folders in ``folder`` that no live run holds: what a
    killed or crashed download or unpacking left behind (it can be GBs). Returns them."""
    removed = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.glob(f".*{PART_SUFFIX}")):
        if _in_use(entry):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue  # removed meanwhile, or not ours to remove: leave it
        removed.append(entry)
    return removed


def network_reason(error: BaseException, url: str) -> str:
    """Why a download failed, in words: "[Errno -2] Name or service not known" means, to a
    user, that this machine is offline or the name is wrong, and what to do instead."""
    reason = getattr(error, "reason", None) or error
    host = urllib.parse.urlsplit(url).hostname or url
    offline = ("this machine seems to be offline (or blocks it); download the file on "
               "another machine and import it from disk instead")
    if isinstance(reason, socket.gaierror):
        return f"cannot find the server {host}: {offline}"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"{host} did not answer in time: {offline}"
    if isinstance(reason, ConnectionRefusedError):
        return (f"{host} refused the connection (the server is down, or a firewall blocks "
                "it); try later, or download the file elsewhere and import it from disk")
    if isinstance(reason, ConnectionError):
        return f"the connection to {host} failed ({reason}): {offline}"
    return str(reason)


def download_file(url: str, target: Path, *, sha256_prefix: str = "", label: str = "",
                  timeout: float = 30.0, max_bytes: int | None = None,
                  progress: ProgressFn = no_progress,
                  cancel: threading.Event | None = None) -> str:
    """Download ``url`` to ``target``; returns the file's SHA-256 (hex). ``sha256_prefix``:
    the start of the expected hash (a published checksum), checked before the rename.
    ``max_bytes``: refuse a larger file (announced or actually sent) instead of filling
    the disk."""
    label = label or target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, received, expected = hashlib.sha256(), 0, 0
    with temporary_beside(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, \
                    open(tmp, "wb") as out:
                expected = int(response.headers.get("Content-Length") or 0)
                if max_bytes is not None and expected > max_bytes:
                    raise DownloadFailed(_too_large(url, label, expected, max_bytes))
                while True:
                    check_cancel(cancel)
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    if max_bytes is not None and received + len(chunk) > max_bytes:
                        raise DownloadFailed(_too_large(url, label, received + len(chunk),
                                                        max_bytes))
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    size = f" of {expected / 1e6:.1f}" if expected else ""
                    progress(received / expected if expected else 0.0,
                             f"downloading {label}: {received / 1e6:.1f}{size} MB")
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise DownloadFailed(f"download from {url} failed: {network_reason(error, url)}"
                                 ) from error
        if expected and received != expected:
            raise DownloadFailed(f"download from {url} was interrupted after {received} of "
                                 f"{expected} bytes")
        hexdigest = digest.hexdigest()
        if not hexdigest.startswith(sha256_prefix):
            raise DownloadDamaged(f"the file downloaded from {url} is damaged or not {label}: "
                                  f"its SHA-256 starts {hexdigest[:8]}, expected "
                                  f"{sha256_prefix}. Nothing was installed; try again later.")
        os.replace(tmp, target)
    return hexdigest


def _too_large(url: str, label: str, size: int, limit: int) -> str:
    return (f"download from {url} is too large: {label} would be over {size / 1e6:.1f} MB, "
            f"more than the {limit / 1e6:.1f} MB it can be; nothing was kept")
