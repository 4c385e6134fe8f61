"""A reader's session: the order they see the cases in, and every answer, saved the moment
it is given.

The session file is rewritten atomically after each answer (a crash or power cut leaves the
previous complete file, never a torn one) and reopening the study with the same reader name
continues at the first unanswered case. Each reader's order is a permutation drawn from the
operating system's randomness and recorded in the file (with its seed), so two readers see
different orders and an analysis can check order effects. The session holds ratings only:
the key is not in it.

A session file comes back from a reader's machine, so loading it trusts nothing: every field
is checked for type and form, and a file that fails names itself and the answer at fault.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.fileio import atomic_write_json
from cxrgan_desktop.study.design import is_case_id, is_study_id
from cxrgan_desktop.study.package import StudyPackage

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
    """Checked again here, not only when the package was opened: this is where an id
    becomes a folder name."""
    if not is_study_id(package.study_id):
        raise SessionError(f"{package.path}: the study id is not of the form this "
                           "application writes; refusing to make a folder from it")
    return (folder or sessions_dir()) / package.study_id / f"{reader_slug(reader)}.session.json"


def reader_order(case_ids: list[str], seed: int | None = None) -> tuple[int, list[str]]:
    """(seed, order): the reader's own permutation, from a fresh secret seed unless one is
    given; the seed is recorded so the order can be reproduced."""
    if seed is None:
        seed = secrets.randbits(63)
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
    seed, order = reader_order(package.case_ids)
    session = ReaderSession(path, package.study_id, package.sha256, reader.strip(), seed, order,
                            started=_now())
    session.save()
    return session


def load_session(path: str | os.PathLike[str]) -> ReaderSession:
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.pop("format", None) != SESSION_FORMAT:
            raise ValueError("not a reader-session file")
        raw_answers = data.pop("answers")
        if not isinstance(raw_answers, list):
            raise ValueError("'answers' is not a list")
        answers = [_checked_answer(file, number, raw)
                   for number, raw in enumerate(raw_answers, start=1)]
        session = ReaderSession(path=file, answers=answers, **data)
    except FileNotFoundError as error:
        raise SessionError(f"{file}: no such file") from error
    except SessionError:
        raise
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise SessionError(f"{file}: not a readable reader session ({error})") from error
    _check_session(session)
    return session


def _checked_answer(file: Path, number: int, raw: object) -> Answer:
    """One answer of a file from elsewhere: every field of the type and range it must have."""
    where = f"{file}, answer {number}"
    if not isinstance(raw, dict):
        raise SessionError(f"{where}: not an answer record")
    try:
        answer = Answer(**raw)
    except TypeError as error:
        raise SessionError(f"{where}: {error}") from error
    if not is_case_id(answer.case):
        raise SessionError(f"{where}: case id {str(answer.case)[:40]!r} is not of the form "
                           "this application writes")
    if not _is_int(answer.rating):
        raise SessionError(f"{where} (case {answer.case}): the rating must be a whole "
                           f"number, got {answer.rating!r:.40}")
    if not _is_int(answer.position) or answer.position < 0:
        raise SessionError(f"{where} (case {answer.case}): the position must be a whole "
                           f"number >= 0, got {answer.position!r:.40}")
    if not _is_int(answer.revised) or answer.revised < 0:
        raise SessionError(f"{where} (case {answer.case}): 'revised' must be a whole number "
                           f">= 0, got {answer.revised!r:.40}")
    seconds = answer.seconds
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
            or not math.isfinite(seconds) or seconds < 0:
        raise SessionError(f"{where} (case {answer.case}): the reading time must be a number "
                           f"of seconds >= 0, got {seconds!r:.40}")
    if not isinstance(answer.answered_at, str):
        raise SessionError(f"{where} (case {answer.case}): 'answered_at' is not a time")
    return answer


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_session(session: ReaderSession) -> None:
    file = session.path
    if not is_study_id(session.study_id):
        raise SessionError(f"{file}: the study id {str(session.study_id)[:40]!r} is not of "
                           "the form this application writes")
    if not isinstance(session.reader, str) or not session.reader.strip():
        raise SessionError(f"{file}: the reader name is missing")
    if not isinstance(session.order, list) or not all(is_case_id(c) for c in session.order) \
            or len(set(session.order)) != len(session.order):
        raise SessionError(f"{file}: the case order is damaged (ids of another form, or a "
                           "case twice)")
    if not isinstance(session.package_sha256, str):
        raise SessionError(f"{file}: the package's SHA-256 is missing")
    if not _is_int(session.order_seed):
        raise SessionError(f"{file}: the order's seed is not a whole number")
    place = {case: position for position, case in enumerate(session.order)}
    seen: set[str] = set()
    for number, answer in enumerate(session.answers, start=1):
        if answer.case in seen:
            raise SessionError(f"{file}, answer {number}: case {answer.case} is answered "
                               "twice")
        if answer.case not in place:
            raise SessionError(f"{file}, answer {number}: case {answer.case} is not in this "
                               "session's order")
        if place[answer.case] != answer.position:
            raise SessionError(f"{file}, answer {number}: case {answer.case} is at place "
                               f"{place[answer.case]} of the order, not {answer.position}")
        seen.add(answer.case)
