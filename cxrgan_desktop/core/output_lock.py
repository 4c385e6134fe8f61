"""One writer per output folder: a lock file that names the process holding it.

Why: two ``cxrgan generate`` (or phantom, convert, archive) runs into one folder would both
exit 0 and leave a mix of their files under one manifest. Every job that writes a folder
holds :func:`output_lock` while it writes, so the second one stops at once with a message
naming the first.

How: the lock file ``.cxrgan.lock`` holds JSON ``{pid, host, command, job, started}``.

- Where ``fcntl.flock`` works (Linux, macOS, most local file systems) the kernel lock on the
  open file is what counts: it is released when its process dies, however it dies, so a lock
  left by a killed process is simply taken over. The holder removes the file on release
  while still holding the kernel lock; a waiter that locked a file that was meanwhile
  removed (its inode no longer the path's) retries, so two processes never both win.
- Elsewhere (no ``fcntl``, or a file system that refuses it, e.g. some network mounts) the
  file is created with ``O_CREAT | O_EXCL``; an existing one is taken over only when it names
  a process on this host that no longer exists. The takeover renames the stale file aside
  and checks that it renamed the very file it judged, so two racers cannot both take it.

The library never prints: a busy folder raises :class:`FolderBusy`, whose message says who
holds it and since when.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
import shlex
import socket
import sys
import time as _time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cxrgan_desktop.core.fileio import read_json_object, remove_orphan_temps

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".cxrgan.lock"
_STALE_PREFIX = ".cxrgan.lock.stale-"
_UNREADABLE_STALE_S = 60.0  # an empty lock file this old was left by a crash


class OutputFolderError(ValueError):
    """An output folder cannot be used as asked (it holds another run, or is busy).

    A ValueError, so callers that already turn ValueErrors into one-line messages keep doing
    so; the CLI prints it as ``cxrgan: error: ...`` with exit code 2.
    """


class FolderBusy(OutputFolderError):
    """Another live process holds the folder's lock."""


def _describe_holder(info: dict[str, Any] | None, folder: Path) -> str:
    if not info:
        return f"{folder} is being written by another process (its lock file {LOCK_NAME} " \
               "is being created); wait for it to finish or choose another folder"
    host = info.get("host")
    where = "" if host in (None, socket.gethostname()) else f" on {host}"
    return (f"{folder} is being written by process {info.get('pid')}{where} "
            f"({info.get('command') or info.get('job') or 'cxrgan'}) since "
            f"{info.get('started', '?')}; wait for it to finish or choose another folder")


def _lock_info(job: str) -> dict[str, Any]:
    command = shlex.join(sys.argv) if sys.argv and sys.argv[0] else job
    return {"pid": os.getpid(), "host": socket.gethostname(), "job": job,
            "command": command[:300],
            "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}


def _write_info(fd: int, info: dict[str, Any]) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(info) + "\n").encode())


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (POSIX; elsewhere assume it does)."""
    if pid <= 0:
        return False
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class _FlockUnsupported(Exception):
    pass


def _acquire_flock(path: Path, info: dict[str, Any]) -> int:
    """The fd of ``path`` under an exclusive kernel lock, with ``info`` written into it."""
    assert fcntl is not None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusy(_describe_holder(read_json_object(path), path.parent)) from None
        except OSError as error:  # ENOLCK, EOPNOTSUPP...: this file system has no flock
            os.close(fd)
            raise _FlockUnsupported(str(error)) from error
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed it between our open and our lock: start again
            os.close(fd)
            continue
        try:
            _write_info(fd, info)
        except BaseException:
            os.close(fd)
            raise
        return fd


def _acquire_exclusive(path: Path, info: dict[str, Any]) -> int:
    """Fallback without flock: create-exclusive, taking over a dead process's file."""
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:
            try:
                _write_info(fd, info)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            return fd
        try:
            before = os.stat(path)
        except FileNotFoundError:
            continue
        holder = read_json_object(path)
        if holder is None:  # being created, or its writer died before writing it
            stale = _time.time() - before.st_mtime > _UNREADABLE_STALE_S
        else:
            stale = (holder.get("host") == socket.gethostname()
                     and isinstance(holder.get("pid"), int) and not pid_alive(holder["pid"]))
        if not stale:
            raise FolderBusy(_describe_holder(holder, path.parent))
        aside = path.with_name(f"{_STALE_PREFIX}{secrets.token_hex(4)}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue  # another process took it over first
        if os.stat(aside).st_ino != before.st_ino:
            # We moved a fresh lock that a racer had just created: put it back, and yield.
            with contextlib.suppress(OSError):
                os.link(aside, path)
            with contextlib.suppress(OSError):
                os.unlink(aside)
            raise FolderBusy(_describe_holder(read_json_object(path), path.parent))
        with contextlib.suppress(OSError):
            os.unlink(aside)
    raise FolderBusy(f"{path.parent}: could not take its lock file {LOCK_NAME}; try again")


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike[str], job: str) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block (the folder is created if needed).

    Raises :class:`FolderBusy` at once if a live process holds it. Once it is held, every
    temporary file left in the folder is a killed run's, and is removed here for every job.
    The lock file is removed on exit, whether the block finished or raised.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    info = _lock_info(job)
    fd: int | None = None
    if fcntl is not None:
        with contextlib.suppress(_FlockUnsupported):
            fd = _acquire_flock(path, info)
    uses_flock = fd is not None
    if fd is None:
        fd = _acquire_exclusive(path, info)
    try:
        remove_orphan_temps(out)
        yield path
    finally:
        # Remove while still holding the kernel lock: a waiter then sees a new inode.
        with contextlib.suppress(OSError):
            os.unlink(path)
        if uses_flock and fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_lock_or_stale(name: str) -> bool:
    """Whether ``name`` is the lock file, or one a takeover renamed aside."""
    return name == LOCK_NAME or name.startswith(_STALE_PREFIX)

