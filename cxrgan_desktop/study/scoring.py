"""Join reader sessions with the answer key into the long results table."""

from __future__ import annotations

from dataclasses import dataclass, field

from cxrgan_desktop.study.design import RatingScale, StudySettings
from cxrgan_desktop.study.key import StudyKey
from cxrgan_desktop.study.results_table import ResultRow
from cxrgan_desktop.study.session import ReaderSession, SessionError


@dataclass
class Scored:
    rows: list[ResultRow]
    warnings: list[str] = field(default_factory=list)


def key_scale(key: StudyKey) -> RatingScale:
    settings = key.built.get("settings")
    return StudySettings.from_dict(settings).scale if settings else RatingScale()


def score_sessions(key: StudyKey, sessions: list[ReaderSession]) -> Scored:
    """Rows for every answered case of every session; sessions of another study (or of a
    package other than the one the key was made with) are refused, and so is any answer
    the key cannot score (an unknown case, a rating off the scale): one error naming the
    file and the answer, never a silent row."""
    scale = key_scale(key)
    scored = Scored([])
    readers: set[str] = set()
    for session in sessions:
        if session.study_id != key.study_id:
            raise SessionError(f"{session.path}: a session of another study (study "
                               f"{session.study_id}), not of this key's ({key.study_id})")
        if session.package_sha256 != key.package_sha256:
            raise SessionError(f"{session.path}: read from another package (SHA-256 "
                               f"{session.package_sha256}) than this key's "
                               f"({key.package_sha256}): the package was changed or rebuilt")
        if session.reader in readers:
            raise SessionError(f"{session.path}: reader {session.reader!r} appears twice")
        readers.add(session.reader)
        _check_against_key(session, key, scale.points)
        if not session.complete:
            scored.warnings.append(f"{session.reader}: {len(session.answers)} of "
                                   f"{len(session.order)} cases answered (incomplete)")
        for answer in sorted(session.answers, key=lambda a: a.position):
            scored.rows.append(ResultRow(
                session.reader, answer.case, key.truth(answer.case), answer.rating,
                scale.answer(answer.rating), answer.seconds))
    planned = int(key.built.get("readers") or 0)
    if planned and len(readers) != planned:
        scored.warnings.append(f"the study was planned for {planned} readers; "
                               f"{len(readers)} session(s) given")
    return scored


def _check_against_key(session: ReaderSession, key: StudyKey, points: int) -> None:
    if set(session.order) != set(key.cases):
        extra = sorted(set(session.order) - set(key.cases))
        raise SessionError(f"{session.path}: the session's cases are not the key's "
                           f"({len(extra)} unknown, e.g. {extra[:1]})")
    for number, answer in enumerate(session.answers, start=1):
        if not 1 <= answer.rating <= points:
            raise SessionError(f"{session.path}, answer {number} (case {answer.case}): rating "
                               f"{answer.rating} is outside the study's scale 1..{points}")
