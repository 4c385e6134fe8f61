"""The memorisation audit's files: what an audit wrote, read back by everyone who uses it.

Why one module: the audit writes these files once, and four other places read them (the
window's Audit tab, ``cxrgan archive``, ``cxrgan study build`` and the exports, which leave
flagged images out). One reader means one meaning of "flagged".

An audit folder::

    audit.csv        one row per synthetic image, most at risk first: its file, pixel hash,
                     flagged (any space), risk, and per space the nearest training file, its
                     patient, the similarity, the held-out fraction and that space's flag
    neighbours.csv   the k nearest training images per synthetic image and space
    summary.json     format, sources, thresholds per space, counts, the audit.csv hash
    contact_sheet.png / .pdf   the closest pairs, side by side
    synthetic/       the generated images, when the audit generated them (``model:NAME``)

Paths in the CSV files are relative to the roots that ``summary.json`` records (the training
folder, the synthetic folder), so the CSV can be read in a spreadsheet and the roots moved.
An audit folder may come from someone else, so reading one trusts nothing in it: a row whose
path is absolute or climbs out of its root (``..``) is refused, never joined to the root
(the window would otherwise show, and ``--exclude-flagged`` match, any file of the
machine); a summary whose parts are not the objects the audit writes is refused the same way.
Text cells that a spreadsheet would run as a formula are written with a leading apostrophe
and read back exactly as they were.

*Held-out fraction*: the share of held-out real images (patients never trained on) that are
at least as similar to their own nearest training image as this synthetic image is to its
nearest. A synthetic image is flagged in a space when that share is at most ``alpha`` (default
0.001): it is closer to the training set than all but that fraction of unseen real patients.
*Risk* is ``1 - min(held-out fraction over spaces)``: the table's sort key.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Any

from cxrgan_desktop.core.csv_cells import FORMULA_STARTS
from cxrgan_desktop.core.fileio import read_json_object, sha256_file

FORMAT = "cxrgan-audit/1"
AUDIT_CSV, NEIGHBOURS_CSV, SUMMARY_JSON = "audit.csv", "neighbours.csv", "summary.json"
SYNTHETIC_FOLDER = "synthetic"
SPACES = ("pixels", "reid", "inception")
"""Every feature space an audit knows, in the order columns are written."""
DEFAULT_ALPHA = 0.001
DEFAULT_K = 5
DEFAULT_PIXEL_SIZE = 32

_LINE_END = "\r\n"
"""RFC 4180's line end. Python's csv writer quotes a cell only for the characters of its
line terminator: with ``\n`` alone, a file name holding a carriage return (legal on POSIX)
was written bare, and every reader split the row there."""
_MATCH_FIELDS = ("nearest_file", "patient", "similarity", "heldout_fraction", "flagged")
_ROW_FIELDS = ("rank", "synthetic_file", "pixel_sha256", "flagged", "risk")


class AuditFileError(ValueError):
    """An audit folder or file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class SpaceMatch:
    """A synthetic image's nearest training image in one feature space."""

    training_file: str  # relative to the training folder, ``/`` separators
    patient: str
    similarity: float
    heldout_fraction: float
    flagged: bool


@dataclass(frozen=True)
class AuditRow:
    rank: int  # 1 = most at risk
    synthetic_file: str  # relative to the synthetic root, ``/`` separators
    pixel_sha256: str
    flagged: bool
    risk: float
    matches: Mapping[str, SpaceMatch] = field(default_factory=dict)


def risk_of(matches: Mapping[str, SpaceMatch]) -> float:
    """``1 - min(held-out fraction)``: 1 when no held-out image came as close."""
    return 1.0 - min(m.heldout_fraction for m in matches.values())


def ranked(rows: Iterable[AuditRow]) -> list[AuditRow]:
    """Most at risk first: flagged, then risk, then the highest similarity; file name last so
    the order is the same on every run."""
    def key(row: AuditRow) -> tuple[bool, float, float, str]:
        top = max((m.similarity for m in row.matches.values()), default=0.0)
        return (not row.flagged, -row.risk, -top, row.synthetic_file)
    out = sorted(rows, key=key)
    return [AuditRow(k + 1, r.synthetic_file, r.pixel_sha256, r.flagged, r.risk, r.matches)
            for k, r in enumerate(out)]


def _number(value: float) -> str:
    return repr(float(value))


def _marked(text: str) -> bool:
    """Whether ``text`` is apostrophes (none or more) and then a formula start."""
    body = text.lstrip("'")
    return body[:1] != "" and body[0] in FORMULA_STARTS


def _safe(text: str) -> str:
    """The project's spreadsheet safety (``core.csv_cells``), generalised so that
    :func:`_unsafe` is its exact inverse: one more apostrophe in front of any run of
    apostrophes before a formula start (``=x`` becomes ``'=x``, ``'=x`` becomes ``''=x``).
    Every other text is left as it is."""
    return "'" + text if _marked(text) else text


def audit_csv_text(rows: Sequence[AuditRow], spaces: Sequence[str]) -> str:
    """The CSV text of ``rows`` (already ranked) with one column group per space."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=_LINE_END)
    writer.writerow([*_ROW_FIELDS, *(f"{s}_{f}" for s in spaces for f in _MATCH_FIELDS)])
    for row in rows:
        cells: list[str] = [str(row.rank), _safe(row.synthetic_file),
                            row.pixel_sha256, str(row.flagged).lower(), _number(row.risk)]
        for space in spaces:
            m = row.matches[space]
            cells += [_safe(m.training_file), _safe(m.patient),
                      _number(m.similarity), _number(m.heldout_fraction),
                      str(m.flagged).lower()]
        writer.writerow(cells)
    return buffer.getvalue()


def neighbours_csv_text(entries: Iterable[tuple[str, str, int, str, str, float]]) -> str:
    """``(synthetic file, space, rank, training file, patient, similarity)`` rows as CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=_LINE_END)
    writer.writerow(["synthetic_file", "space", "rank", "training_file", "patient",
                     "similarity"])
    for synthetic, space, rank, training, patient, similarity in entries:
        writer.writerow([_safe(synthetic), space, str(rank),
                         _safe(training), _safe(patient),
                         _number(similarity)])
    return buffer.getvalue()


def _unsafe(text: str) -> str:
    """Undo :func:`_safe`: drop the one apostrophe it put before apostrophes (if any) and a
    formula start."""
    return text[1:] if text[:1] == "'" and _marked(text) else text


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def relative_file(text: str, where: str, column: str) -> str:
    """``text`` when it is a path inside its root: relative and without ``..`` (``/`` or, on
    Windows, ``\\`` separated; no drive); :class:`AuditFileError` otherwise, so that no
    row can point outside its root. (On POSIX a backslash is part of a file name, and a
    name such as ``..\\x`` stays inside the root.)"""
    paths: list[PurePath] = [PurePosixPath(text)]
    if os.name == "nt":
        paths.append(PureWindowsPath(text))
    if (not text or "\0" in text or any(p.is_absolute() or p.drive or p.root
                                        or ".." in p.parts or not p.parts for p in paths)):
        raise AuditFileError(f"{where}: {column} {text!r} is not a path inside its folder "
                             "(absolute, or climbing out with '..'); this audit.csv was not "
                             "written by `cxrgan audit`: run the audit again")
    return text


def _bool(cell: str, where: str) -> bool:
    if cell not in ("true", "false"):
        raise AuditFileError(f"{where}: expected true or false, found {cell!r}")
    return cell == "true"


def _float(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise AuditFileError(f"{where}: expected a number, found {cell!r}") from None
    if not math.isfinite(value):
        raise AuditFileError(f"{where}: expected a finite number, found {cell!r}")
    return value


def parse_audit_csv(path: Path) -> tuple[list[AuditRow], tuple[str, ...]]:
    """Rows and spaces of an ``audit.csv``; :class:`AuditFileError` names what is wrong."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return _parse_rows(path, csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error, MemoryError) as error:
        raise AuditFileError(f"{path}: cannot read the audit table ({error}); run "
                             "`cxrgan audit` again to rewrite it") from error


def _parse_rows(path: Path, reader: Iterable[list[str]]
                ) -> tuple[list[AuditRow], tuple[str, ...]]:
    reader = iter(reader)
    header = next(reader, None)
    if header is None or tuple(header[:len(_ROW_FIELDS)]) != _ROW_FIELDS:
        raise AuditFileError(f"{path}: not an audit table (the header should start with "
                             f"{', '.join(_ROW_FIELDS)}); give the audit.csv that `cxrgan "
                             "audit` wrote")
    spaces = tuple(s for s in SPACES if f"{s}_nearest_file" in header)
    expected = [*_ROW_FIELDS, *(f"{s}_{f}" for s in spaces for f in _MATCH_FIELDS)]
    if header != expected or not spaces:
        raise AuditFileError(f"{path}: unexpected columns {header}; give the audit.csv that "
                             "`cxrgan audit` wrote")
    rows = []
    for line, cells in enumerate(reader, start=2):
        where = f"{path}, line {line}"
        if len(cells) != len(expected):
            raise AuditFileError(f"{where}: {len(cells)} cells, expected {len(expected)} "
                                 "(a damaged or hand-edited file); run the audit again")
        matches = {}
        for k, space in enumerate(spaces):
            c = cells[len(_ROW_FIELDS) + k * len(_MATCH_FIELDS):][:len(_MATCH_FIELDS)]
            matches[space] = SpaceMatch(
                relative_file(_unsafe(c[0]), where, f"{space}_nearest_file"), _unsafe(c[1]),
                _float(c[2], where), _float(c[3], where), _bool(c[4], where))
        if not _SHA256.match(cells[2]):
            raise AuditFileError(f"{where}: pixel_sha256 {cells[2][:80]!r} is not a SHA-256 "
                                 "(64 hexadecimal digits); run the audit again")
        rows.append(AuditRow(int(_float(cells[0], where)),
                             relative_file(_unsafe(cells[1]), where, "synthetic_file"),
                             cells[2], _bool(cells[3], where), _float(cells[4], where),
                             matches))
    return rows, spaces


@dataclass
class AuditReport:
    """An audit folder read back: the ranked rows and the summary."""

    folder: Path
    rows: list[AuditRow]
    spaces: tuple[str, ...]
    summary: dict[str, Any]

    @property
    def synthetic_root(self) -> Path:
        return Path(self.summary["synthetic"]["root"])

    @property
    def training_root(self) -> Path:
        return Path(self.summary["train"]["image_dir"])

    def synthetic_path(self, row: AuditRow) -> Path:
        """The file under the synthetic root (a path that leaves it is refused)."""
        return self.synthetic_root / relative_file(row.synthetic_file, str(self.folder),
                                                   "synthetic_file")

    def training_path(self, match: SpaceMatch) -> Path:
        """The file under the training root (a path that leaves it is refused)."""
        return self.training_root / relative_file(match.training_file, str(self.folder),
                                                  "training file")

    @property
    def flagged(self) -> list[AuditRow]:
        return [row for row in self.rows if row.flagged]


def _audit_folder(path: str | Path) -> tuple[Path, Path]:
    """(folder, audit.csv) for a folder or its audit.csv."""
    given = Path(path)
    csv_path = given / AUDIT_CSV if given.is_dir() else given
    if not csv_path.is_file():
        raise AuditFileError(f"{given}: no {AUDIT_CSV} here; give an audit folder or its "
                             f"{AUDIT_CSV} (made by `cxrgan audit` or the Audit tab)")
    return csv_path.parent, csv_path


def read_audit(path: str | Path) -> AuditReport:
    """Read an audit folder (or its ``audit.csv``); the summary must describe this table."""
    folder, csv_path = _audit_folder(path)
    summary_path = folder / SUMMARY_JSON
    summary = read_json_object(summary_path)
    if summary is None or summary.get("format") != FORMAT:
        raise AuditFileError(f"{summary_path}: missing or not an audit summary ({FORMAT}); "
                             "run the audit again")
    _check_summary(summary_path, summary)
    recorded = summary["files"][AUDIT_CSV]["sha256"]
    try:
        actual = sha256_file(csv_path)
    except OSError as error:
        raise AuditFileError(f"{csv_path}: cannot read the audit table ({error}); run "
                             "`cxrgan audit` again to rewrite it") from error
    if recorded != actual:
        raise AuditFileError(f"{csv_path}: changed since the audit wrote it (its SHA-256 is "
                             f"not the one {SUMMARY_JSON} records); run the audit again "
                             "rather than editing the table")
    rows, spaces = parse_audit_csv(csv_path)
    return AuditReport(folder, rows, spaces, summary)


def _check_summary(path: Path, summary: dict[str, Any]) -> None:
    """The parts of ``summary.json`` that readers index into are the objects the audit
    writes: a crafted or damaged summary is an :class:`AuditFileError`, not a crash."""
    def part(value: Any, name: str, kind: type) -> Any:
        if not isinstance(value, kind):
            what = "an object" if kind is dict else "a text"
            raise AuditFileError(f"{path}: {name} is missing or not {what}; this summary was "
                                 "not written by `cxrgan audit`: run the audit again")
        return value
    files = part(summary.get("files"), "files", dict)
    part(part(files.get(AUDIT_CSV), f"files.{AUDIT_CSV}", dict).get("sha256"),
         f"files.{AUDIT_CSV}.sha256", str)
    part(part(summary.get("synthetic"), "synthetic", dict).get("root"), "synthetic.root", str)
    part(part(summary.get("train"), "train", dict).get("image_dir"), "train.image_dir", str)
    for space, info in part(summary.get("spaces", {}), "spaces", dict).items():
        part(info, f"spaces.{space}", dict)


@dataclass(frozen=True)
class FlaggedImages:
    """The images an audit flagged, as the commands that leave them out need them.

    An image is recognised by its pixels (:func:`~cxrgan_desktop.imaging.pixel_hash.
    pixel_sha256`), so a renamed copy or a DICOM of the same array is still recognised, or by
    its path when it is the very file the audit read. A DICOM read through its window gives
    other pixels when the window is not the full range: readers of DICOM files hash their
    stored values as well (``study_build.stored_values_hash``; the other exclusions hash
    the array they write, or read it as stored).
    """

    audit_csv: Path
    audit_sha256: str
    pixel_hashes: frozenset[str]
    files: frozenset[Path]
    audited: int
    thresholds: Mapping[str, Any]

    def is_flagged(self, path: str | Path | None = None, pixel_hash: str | None = None
                   ) -> bool:
        if pixel_hash is not None and pixel_hash in self.pixel_hashes:
            return True
        return path is not None and Path(path).resolve() in self.files

    def record(self, excluded: Sequence[str]) -> dict[str, Any]:
        """What a manifest records about the audit it used and what that left out."""
        return {"audit_csv": str(self.audit_csv), "audit_sha256": self.audit_sha256,
                "audited_images": self.audited, "flagged_images": len(self.pixel_hashes),
                "thresholds": dict(self.thresholds), "excluded": len(excluded),
                "excluded_files": list(excluded)}


def read_flagged(path: str | Path) -> FlaggedImages:
    """The flagged images of an audit folder or ``audit.csv`` (``--exclude-flagged``)."""
    report = read_audit(path)
    _, csv_path = _audit_folder(path)
    flagged = report.flagged
    thresholds = {space: info.get("threshold_similarity")
                  for space, info in report.summary.get("spaces", {}).items()}
    thresholds["alpha"] = report.summary.get("alpha")
    return FlaggedImages(
        audit_csv=csv_path.resolve(), audit_sha256=sha256_file(csv_path),
        pixel_hashes=frozenset(row.pixel_sha256 for row in flagged),
        files=frozenset(report.synthetic_path(row).resolve() for row in flagged),
        audited=len(report.rows), thresholds=thresholds)


def summary_text(summary: Mapping[str, Any]) -> str:
    """``summary.json``'s text (stable key order, for the file hash to mean something)."""
    return json.dumps(summary, indent=2, sort_keys=True) + "\n"
