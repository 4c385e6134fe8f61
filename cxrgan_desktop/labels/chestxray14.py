"""The NIH ChestX-ray14 label file (``Data_Entry_2017*.csv``): reader and writer.

Why here: the label file drives the phantom's label distribution, the LCO archive builder and
any real-data comparison, and the phantom writes its own labels in the same layout so that
tools made for the real dataset read synthetic sets unchanged.

Two layouts exist. Both have the columns ``Image Index, Finding Labels, Follow-up #,
Patient ID, Patient Age, Patient Gender, View Position, OriginalImage[Width,Height],
OriginalImagePixelSpacing[x,y]`` (the last two header names contain a comma, so each spans
two CSV fields: 11 fields per row). The original 2017 release ends every line with an extra
empty field (12 fields); the 2020 revision (``Data_Entry_2017_v2020.csv``) does not. Either may
be gzip-compressed. ``Finding Labels`` is ``|``-separated, ``No Finding`` meaning none.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cxrgan_desktop.core.fileio import atomic_write_text

FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
"""The 14 findings in the dataset's canonical order (the order of Wang et al. 2017)."""

NO_FINDING = "No Finding"

HEADER_FIELDS: tuple[str, ...] = (
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
)
"""The header as the CSV module splits it (v2020 layout; 2017 adds one empty field)."""

_FINDING_SET = frozenset(FINDINGS)
GENDERS = ("M", "F", "O")
"""ChestX-ray14 uses M and F. ``O`` (DICOM's code for other or unknown) marks rows of
synthetic images, whose generator has no patient sex; such rows also have age 0."""


@dataclass(frozen=True)
class DataEntry:
    """One row of the label file. Sizes in pixels, spacings in mm per pixel."""

    image_index: str
    findings: frozenset[str]
    follow_up: int
    patient_id: int
    age: int
    gender: str
    view_position: str
    width: int
    height: int
    pixel_spacing_x: float
    pixel_spacing_y: float

    @property
    def finding_labels(self) -> str:
        """The ``Finding Labels`` cell: findings in canonical order, or ``No Finding``."""
        return format_findings(self.findings)


def format_findings(findings: Iterable[str]) -> str:
    """Findings as the dataset writes them: canonical order, ``|``-joined, or ``No Finding``."""
    chosen = set(findings)
    unknown = chosen - _FINDING_SET
    if unknown:
        raise ValueError(f"unknown finding(s) {sorted(unknown)}; known: {', '.join(FINDINGS)}")
    return "|".join(f for f in FINDINGS if f in chosen) or NO_FINDING


def parse_findings(cell: str) -> frozenset[str]:
    """Parse a ``Finding Labels`` cell; raises ``ValueError`` on an unknown finding name."""
    cell = cell.strip()
    if cell == NO_FINDING or cell == "":
        return frozenset()
    names = [part.strip() for part in cell.split("|")]
    unknown = [n for n in names if n not in _FINDING_SET]
    if unknown:
        raise ValueError(f"unknown finding(s) {unknown}")
    return frozenset(names)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _check_header(path: Path, header: list[str]) -> None:
    fields = [h.strip() for h in header]
    if len(fields) == len(HEADER_FIELDS) + 1 and fields[-1] == "":
        fields = fields[:-1]  # the 2017 layout's trailing empty column
    if [f.lower() for f in fields] != [h.lower() for h in HEADER_FIELDS]:
        missing = [h for h in HEADER_FIELDS if h.lower() not in {f.lower() for f in fields}]
        raise ValueError(
            f"{path}: line 1: not a ChestX-ray14 label file header"
            + (f" (missing columns: {', '.join(missing)})" if missing else f" (got {header})")
        )


def _parse_age(text: str) -> int:
    text = text.strip()
    if text[-1:] in ("Y", "y"):  # an early 2017 release wrote ages as e.g. "058Y"
        text = text[:-1]
    return int(text)


def _parse_row(row: list[str]) -> DataEntry:
    if len(row) == len(HEADER_FIELDS) + 1 and row[-1].strip() == "":
        row = row[:-1]
    if len(row) != len(HEADER_FIELDS):
        raise ValueError(f"expected {len(HEADER_FIELDS)} fields, got {len(row)}")
    gender = row[5].strip()
    if gender not in GENDERS:
        raise ValueError(f"Patient Gender must be M or F (or O in synthetic label files), "
                         f"got {gender!r}")
    image_index = row[0].strip()
    if not image_index:
        raise ValueError("empty Image Index")
    return DataEntry(
        image_index=image_index,
        findings=parse_findings(row[1]),
        follow_up=int(row[2]),
        patient_id=int(row[3]),
        age=_parse_age(row[4]),
        gender=gender,
        view_position=row[6].strip(),
        width=int(row[7]),
        height=int(row[8]),
        pixel_spacing_x=float(row[9]),
        pixel_spacing_y=float(row[10]),
    )


def read_data_entry_csv(path: str | os.PathLike[str]) -> list[DataEntry]:
    """Read a ChestX-ray14 label file (2017 or v2020 layout, plain or ``.gz``).

    Raises ``ValueError`` naming the file and the line for a bad header or a malformed row,
    because a silently skipped row would bias every prevalence computed from the file.
    """
    path = Path(path)
    entries: list[DataEntry] = []
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: the file is empty (no header line)") from None
        _check_header(path, header)
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line (e.g. at the end of the file)
            try:
                entries.append(_parse_row(row))
            except ValueError as exc:
                raise ValueError(f"{path}: line {reader.line_num}: malformed row: {exc}") from exc
    return entries


def _format_float(value: float) -> str:
    return repr(float(value))


def write_data_entry_csv(path: str | os.PathLike[str], entries: Iterable[DataEntry]) -> None:
    """Write entries in the v2020 layout (no trailing column), atomically.

    A path ending in ``.gz`` is not supported: the label file is small and tools expect text.
    """
    path = Path(path)
    if path.suffix == ".gz":
        raise ValueError(f"{path}: write the label file uncompressed (.csv)")
    atomic_write_text(path, data_entry_csv_text(entries))


def data_entry_csv_text(entries: Iterable[DataEntry]) -> str:
    """The text :func:`write_data_entry_csv` writes (for jobs that write it together with
    another file, see ``fileio.atomic_write_many``)."""
    buffer = io.StringIO()
    # The header is written raw: its last two names contain commas that the dataset leaves
    # unquoted, so that each splits into two fields exactly as the data rows do.
    buffer.write(",".join(HEADER_FIELDS) + "\n")
    writer = csv.writer(buffer, lineterminator="\n")
    for e in entries:
        writer.writerow(
            [
                e.image_index,
                format_findings(e.findings),
                e.follow_up,
                e.patient_id,
                e.age,
                e.gender,
                e.view_position,
                e.width,
                e.height,
                _format_float(e.pixel_spacing_x),
                _format_float(e.pixel_spacing_y),
            ]
        )
    return buffer.getvalue()
