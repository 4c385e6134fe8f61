"""A reader's session: the order they see the cases in, and every answer, saved the moment
it is given.

The session file is rewritten atomically after each answer (a crash or power cut leaves the
previous complete file, never a torn one) and reopening the study with the same reader name
continues at the first unanswered case. The order is a permutation seeded by the study and
the reader's name, recorded in the file, so two readers see different orders and an analysis
can check order effects. The session holds ratings only: the key is not in it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cxrgan_desktop import paths
from cxrgan_desktop.fileio import atomic_write_json
from cxrgan_desktop.quiz.package import StudyPackage

SESSION_FORMAT = "cxrgan-desktop/reader-session"


class SessionError(ValueError):
    """A session that cannot continue or be scored; the message says why."""


@dataclass
class Answer:
    case: str
    rating: int
    seconds: float
    answered_at: str
    position: int  # 0-based place in this reader's order
    revised: int = 0  # times changed afterwards (only where the study allows going back)


@dataclass
class ReaderSession:
    path: Path
    study_id: str
    package_sha256: str
    reader: str
    order_seed: int
    order: list[str]
    answers: list[Answer] = field(default_factory=list)
    practice_done: bool = False
    started: str = ""
    finished: str = ""

    # -- progress ---------------------------------------------------------------------------
    def answered(self) -> dict[str, Answer]:
        return {a.case: a for a in self.answers}

    def next_position(self) -> int | None:
        """The first case in order without an answer; None when all are answered."""
        done = self.answered()
        for position, case in enumerate(self.order):
            if case not in done:
                return position
        return None

    @property
    def complete(self) -> bool:
        return self.next_position() is None

    # -- recording --------------------------------------------------------------------------
    def record(self, case: str, rating: int, seconds: float, allow_back: bool = False) -> None:
        """Save one answer now. A second answer to a case replaces the first only where the
        study allows going back."""
        if case not in self.order:
            raise SessionError(f"case {case!r} is not in this study")
        now = _now()
        previous = self.answered().get(case)
        if previous is not None:
            if not allow_back:
                raise SessionError(f"case {case!r} is already answered and this study does "
                                   "not allow changing answers")
            previous.rating, previous.revised = rating, previous.revised + 1
            previous.seconds += seconds
            previous.answered_at = now
        else:
            self.answers.append(Answer(case, rating, round(seconds, 3), now,
                                       self.order.index(case)))
        if self.complete and not self.finished:
            self.finished = now
        self.save()

    def mark_practice_done(self) -> None:
        self.practice_done = True
        self.save()

    def save(self) -> None:
        data = asdict(self)
        data.pop("path")
        data["format"] = SESSION_FORMAT
        atomic_write_json(self.path, data)


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def reader_identity(reader: str) -> str:
    """Who a name means: spaces collapsed and case folded, so "Dr  Test" and "dr test" are
    one reader (and one file on a case-insensitive disk), while "Dr/Test" is another."""
    identity = " ".join(reader.split()).casefold()
    if not identity:
        raise SessionError("the reader name is empty")
    return identity


def _legacy_slug(reader: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", reader.strip()).strip("_")[:60]


def reader_slug(reader: str) -> str:
    """The session file's stem: readable, plus a hash of the identity, because making a name
    safe for a file system maps different names ("Dr/Test", "Dr_Test") to one string."""
    identity = reader_identity(reader)
    readable = re.sub(r"[^a-z0-9_-]+", "_", identity).strip("_")[:40] or "reader"
    return f"{readable}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


def sessions_dir() -> Path:
    return paths.data_dir() / "reader_sessions"


def session_path(package: StudyPackage, reader: str, folder: Path | None = None) -> Path:
    return (folder or sessions_dir()) / package.study_id / f"{reader_slug(reader)}.session.json"


def reader_order(study_id: str, reader: str, case_ids: list[str]) -> tuple[int, list[str]]:
    """(seed, order): the reader's own permutation, reproducible from the seed."""
    seed = int.from_bytes(hashlib.sha256(f"{study_id}/{reader.strip()}".encode()).digest()[:8],
                          "little")
    permutation = np.random.default_rng(seed).permutation(len(case_ids))
    return seed, [case_ids[i] for i in permutation]


def open_session(package: StudyPackage, reader: str, folder: Path | None = None
                 ) -> ReaderSession:
    """Resume this reader's session of this study, or start one."""
    path = session_path(package, reader, folder)
    legacy = path.with_name(f"{_legacy_slug(reader)}.session.json")  # before 0.1 named so
    for candidate in (path, legacy):
        if not candidate.is_file():
            continue
        session = load_session(candidate)
        if session.study_id != package.study_id:
            raise SessionError(f"{candidate} belongs to another study")
        if reader_identity(session.reader) != reader_identity(reader):
            if candidate == legacy:
                continue  # another reader whose name made the same old file name
            raise SessionError(f"{candidate} is the session of {session.reader!r}, not of "
                               f"{reader.strip()!r}")
        return session
    seed, order = reader_order(package.study_id, reader, package.case_ids)
    session = ReaderSession(path, package.study_id, package.sha256, reader.strip(), seed, order,
                            started=_now())
    session.save()
    return session


def load_session(path: str | os.PathLike[str]) -> ReaderSession:
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if data.pop("format", None) != SESSION_FORMAT:
            raise ValueError("not a reader-session file")
        answers = [Answer(**a) for a in data.pop("answers")]
        return ReaderSession(path=file, answers=answers, **data)
    except FileNotFoundError as error:
        raise SessionError(f"{file}: no such file") from error
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise SessionError(f"{file}: not a readable reader session ({error})") from error
