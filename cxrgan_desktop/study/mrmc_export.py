"""The results table rewritten for the established multi-reader multi-case (MRMC) analysis
programs, so that the study's headline inference (reader-averaged AUC with readers *and* cases
as random effects) comes from validated software rather than from this app.

Both formats make ``synthetic`` the positive class (truth 1) and ``real`` the negative class
(truth 0), matching the rating scale: a higher rating means "more confident synthetic".
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable

from cxrgan_desktop.core.csv_cells import spreadsheet_safe
from cxrgan_desktop.core.fileio import atomic_write_text
from cxrgan_desktop.study.results_table import CLASSES, ResultRow

MRMCAOV_COLUMNS = ("reader", "treatment", "case", "truth", "rating")

# iMRMC treats a data row whose reader is one of these as a case's truth row, not a score
_IMRMC_TRUTH_READERS = ("-1", "truth")


def _checked(rows: Iterable[ResultRow]) -> list[ResultRow]:
    """The rows, refused when the MRMC programs would reject or misread them: a repeated
    reader x case (a replicate observation) or a case whose truth differs between readers."""
    table = list(rows)
    if not table:
        raise ValueError("no results to export")
    seen: set[tuple[str, str]] = set()
    truth: dict[str, str] = {}
    for row in table:
        if row.truth not in CLASSES:
            raise ValueError(f"case {row.case!r}: truth must be 'real' or 'synthetic', got "
                             f"{row.truth!r}")
        if (row.reader, row.case) in seen:
            raise ValueError(f"reader {row.reader!r} rated case {row.case!r} twice")
        seen.add((row.reader, row.case))
        if truth.setdefault(row.case, row.truth) != row.truth:
            raise ValueError(f"case {row.case!r} is both real and synthetic in the table")
    return table


def _truth_code(truth: str) -> int:
    return 1 if truth == "synthetic" else 0


def write_mrmcaov_csv(rows: Iterable[ResultRow], path: str | os.PathLike[str],
                      modality: str = "PGGAN") -> None:
    """A CSV for the R package MRMCaov, laid out like its bundled VanDyke data: one row per
    reader x case with columns ``reader,treatment,case,truth,rating`` and truth 1 = synthetic
    (positive), 0 = real (negative). Read it with ``read.csv`` and analyse with e.g.
    ``mrmc(empirical_auc(truth, rating), treatment, reader, case, data = df)``; a single
    treatment gives the reader-averaged AUC and its interval rather than a comparison."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MRMCAOV_COLUMNS)
    for row in _checked(rows):
        writer.writerow([spreadsheet_safe(row.reader), spreadsheet_safe(modality),
                         spreadsheet_safe(row.case), _truth_code(row.truth), row.rating])
    atomic_write_text(path, out.getvalue())


def _imrmc_ids(names: Iterable[str], kind: str) -> dict[str, str]:
    """Names made safe for iMRMC, which splits rows at commas and deletes all whitespace inside
    an id: runs of whitespace or commas become one underscore, and a clash this creates (or a
    reader called like a truth row) is an error rather than two people merged into one."""
    mapping: dict[str, str] = {}
    taken: dict[str, str] = {}
    for name in names:
        if name in mapping:
            continue
        safe = re.sub(r"[\s,]+", "_", name.strip()).strip("_")
        if not safe:
            raise ValueError(f"{kind} {name!r} has no usable characters for iMRMC")
        if kind == "reader" and safe in _IMRMC_TRUTH_READERS:
            raise ValueError(f"reader {name!r} would be read by iMRMC as a truth row")
        if safe in taken:
            raise ValueError(f"{kind}s {taken[safe]!r} and {name!r} both become {safe!r} in "
                             f"the iMRMC file")
        mapping[name], taken[safe] = safe, name
    return mapping


def write_imrmc(rows: Iterable[ResultRow], path: str | os.PathLike[str],
                modality: str = "PGGAN") -> None:
    """An input file for the FDA's iMRMC (github.com/DIDSR/iMRMC; Java app and R package
    ``iMRMC``, conventionally with the ``.imrmc`` extension): a free-text header with the
    study size (``NR``, ``N0``, ``N1``, ``NM``), then after ``BEGIN DATA:`` one truth row
    ``-1,case,0,truth`` per case (truth 1 = synthetic, the positive/"disease" class; 0 = real,
    the negative/"normal" class) and one score row ``reader,case,modality,rating`` per reader x
    case. Ids containing whitespace or commas are rewritten (see ``_imrmc_ids``) because iMRMC
    would otherwise mangle them."""
    table = _checked(rows)
    readers = _imrmc_ids((row.reader for row in table), "reader")
    cases = _imrmc_ids((row.case for row in table), "case")
    (treatment,) = _imrmc_ids([modality], "modality").values()
    truth = {row.case: _truth_code(row.truth) for row in table}
    lines = [
        "cxrgan-desktop reader study: real vs synthetic chest radiographs",
        "truth 1 = synthetic (positive), 0 = real (negative); higher rating = more synthetic",
        "",
        f"NR: {len(readers)}",
        f"N0: {sum(1 for code in truth.values() if code == 0)}",
        f"N1: {sum(1 for code in truth.values() if code == 1)}",
        "NM: 1",
        "",
        "BEGIN DATA:",
    ]
    lines += [f"-1,{cases[case]},0,{code}" for case, code in truth.items()]
    lines += [f"{readers[row.reader]},{cases[row.case]},{treatment},{row.rating}"
              for row in table]
    atomic_write_text(path, "\n".join(lines) + "\n")
