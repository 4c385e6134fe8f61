"""The long results table every analysis starts from: ``reader,case,truth,rating,answer,
seconds``, one row per reader per scored case.

The columns are fixed (exactly these, in this order) so that a table produced elsewhere (by
another tool, or typed in from paper forms) can be analysed too. ``truth`` and ``answer`` are
``real`` or ``synthetic``; ``rating`` is the ordinal integer (higher = more confident the
image is synthetic); ``seconds`` is the reading time, empty when unknown.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cxrgan_desktop.core.csv_cells import spreadsheet_safe
from cxrgan_desktop.core.fileio import atomic_write_text

COLUMNS = ("reader", "case", "truth", "rating", "answer", "seconds")
CLASSES = ("real", "synthetic")


class ResultsTableError(ValueError):
    """A results table that cannot be analysed; the message names the file, row and problem."""


@dataclass(frozen=True)
class ResultRow:
    reader: str
    case: str
    truth: str  # real | synthetic
    rating: int  # higher = more confident synthetic
    answer: str  # real | synthetic
    seconds: float | None = None

    @property
    def correct(self) -> bool:
        return self.truth == self.answer

    @property
    def is_synthetic(self) -> bool:
        return self.truth == "synthetic"


def write_results(path: str | os.PathLike[str], rows: Iterable[ResultRow]) -> None:
    """Written atomically; reader and case cells that a spreadsheet would run as a formula
    are neutralised (:mod:`cxrgan_desktop.core.csv_cells`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        seconds = "" if row.seconds is None else f"{row.seconds:.3f}"
        writer.writerow([spreadsheet_safe(row.reader), spreadsheet_safe(row.case), row.truth,
                         row.rating, row.answer, seconds])
    atomic_write_text(path, out.getvalue())


def read_results(path: str | os.PathLike[str]) -> list[ResultRow]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ResultsTableError(f"{file}: cannot read ({error.strerror or error})") from error
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip() for h in header) != COLUMNS:
        raise ResultsTableError(f"{file}: the header must be exactly {','.join(COLUMNS)}; "
                                f"found {','.join(header or [])!r}")
    rows, seen = [], set()
    for line, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        rows.append(_parse_row(file, line, fields))
        key = (rows[-1].reader, rows[-1].case)
        if key in seen:
            raise ResultsTableError(f"{file}, line {line}: reader {key[0]!r} answered case "
                                    f"{key[1]!r} twice")
        seen.add(key)
    if not rows:
        raise ResultsTableError(f"{file}: no rows")
    return rows


def _parse_row(file: Path, line: int, fields: list[str]) -> ResultRow:
    if len(fields) != len(COLUMNS):
        raise ResultsTableError(f"{file}, line {line}: {len(fields)} fields, expected "
                                f"{len(COLUMNS)}")
    reader, case, truth, rating, answer, seconds = (f.strip() for f in fields)
    for name, value in (("truth", truth), ("answer", answer)):
        if value not in CLASSES:
            raise ResultsTableError(f"{file}, line {line}: {name} must be 'real' or "
                                    f"'synthetic', got {value!r}")
    if not reader or not case:
        raise ResultsTableError(f"{file}, line {line}: empty reader or case")
    try:
        rating_value = int(rating)
    except ValueError as error:
        raise ResultsTableError(f"{file}, line {line}: rating must be an integer, got "
                                f"{rating!r}") from error
    time: float | None = None
    if seconds:
        try:
            time = float(seconds)
        except ValueError as error:
            raise ResultsTableError(f"{file}, line {line}: seconds must be a number, got "
                                    f"{seconds!r}") from error
        if not math.isfinite(time) or time < 0:
            raise ResultsTableError(f"{file}, line {line}: seconds must be >= 0")
    return ResultRow(reader, case, truth, rating_value, answer, time)
