"""Fetch a file over HTTP(S) into place, whole or not at all.

Shared by the FID weights and the known models. The file streams into a temporary name in the
target's folder and is renamed only when every byte announced arrived and, where the caller
knows it, the SHA-256 matches; an interrupted, cancelled or damaged download leaves nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cxrgan_desktop.jobs import ProgressFn, check_cancel, no_progress

CHUNK = 1 << 16


class DownloadFailed(Exception):
    """The transfer failed or was incomplete: the message names the URL and the reason."""


class DownloadDamaged(Exception):
    """The whole file arrived but is not the expected one (wrong SHA-256)."""


@contextlib.contextmanager
def temporary_beside(target: Path) -> Iterator[Path]:
    """A temporary name in the target's folder (so the final rename is atomic), removed on
    any failure."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def download_file(url: str, target: Path, *, sha256_prefix: str = "", label: str = "",
                  timeout: float = 30.0, progress: ProgressFn = no_progress,
                  cancel: threading.Event | None = None) -> str:
    """Download ``url`` to ``target``; returns the file's SHA-256 (hex). ``sha256_prefix``:
    the start of the expected hash (a published checksum), checked before the rename."""
    label = label or target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, received, expected = hashlib.sha256(), 0, 0
    with temporary_beside(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, \
                    open(tmp, "wb") as out:
                expected = int(response.headers.get("Content-Length") or 0)
                while True:
                    check_cancel(cancel)
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    size = f" of {expected / 1e6:.1f}" if expected else ""
                    progress(received / expected if expected else 0.0,
                             f"downloading {label}: {received / 1e6:.1f}{size} MB")
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise DownloadFailed(f"download from {url} failed: {reason}") from error
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
