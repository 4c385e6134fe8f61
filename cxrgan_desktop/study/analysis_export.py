"""The files an analysis leaves behind, one set for the command line and the window:
``summary.json`` (every statistic), ``report.txt`` (the same, to read), and the long table
for MRMC software (``mrmcaov.csv``, ``imrmc_input.imrmc``)."""

from __future__ import annotations

from pathlib import Path

from cxrgan_desktop.core.fileio import atomic_write_json, atomic_write_text
from cxrgan_desktop.study.analysis import Analysis, report_text
from cxrgan_desktop.study.mrmc_export import write_imrmc, write_mrmcaov_csv
from cxrgan_desktop.study.results_table import ResultRow, write_results

ANALYSIS_FILES = ("summary.json", "report.txt", "mrmcaov.csv", "imrmc_input.imrmc")


def write_analysis(rows: list[ResultRow], analysis: Analysis, out: str | Path,
                   include_results: bool = False) -> list[Path]:
    """Write the analysis files into ``out`` (made if needed); with ``include_results`` also
    the ``results.csv`` they came from. Returns the paths written."""
    folder = Path(out)
    written = [folder / name for name in ANALYSIS_FILES]
    atomic_write_json(written[0], analysis.to_dict())
    atomic_write_text(written[1], report_text(analysis))
    write_mrmcaov_csv(rows, written[2])
    write_imrmc(rows, written[3])
    if include_results:
        written.append(folder / "results.csv")
        write_results(written[-1], rows)
    return written
