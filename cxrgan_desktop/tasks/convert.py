"""The conversion job: any readable images -> normalised 16-bit PNGs with a report.

Shared by ``cxrgan convert`` and the GUI. The report (``conversion_report.csv``) has one row
per input file: what was read and how it was normalised, or why it was skipped. Output names
keep the inputs' folder structure (``a/b/c.dcm`` -> ``a__b__c.png``) so that two inputs with
the same name in different folders do not collide.

The report describes exactly the PNGs beside it. The folder is locked while the job writes
it. A report marked ``incomplete`` is written before the first image, and rewritten every
few seconds; the name of each output is appended to a journal (``.cxrgan-convert.journal``)
before the file is written, so a killed run's files are known even where no report lists
them. A folder holding a finished conversion is refused unless ``overwrite``; an unfinished
(killed, cancelled or failed) one is replaced by running the conversion again. Replacing
removes only the files the earlier report or journal names, never anything else.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cxrgan_desktop.core.csv_cells import FORMULA_STARTS, spreadsheet_safe
from cxrgan_desktop.core.fileio import atomic_write_text
from cxrgan_desktop.core.jobs import Cancelled, ProgressFn, no_progress
from cxrgan_desktop.core.output_lock import OutputFolderError, output_lock
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.imaging.readers import (
    LoadedImage,
    Skipped,
    display_path,
    is_folder,
    scan_images,
)

REPORT_NAME = "conversion_report.csv"
JOURNAL_NAME = ".cxrgan-convert.journal"
_SAVE_EVERY_S = 2.0
_INCOMPLETE_NOTE = ("the conversion is running or was interrupted; run it again to finish it "
                    "(the files listed above are whole)")
REPORT_COLUMNS = ("status", "source", "output", "sop_instance_uid", "format", "width",
                  "height", "photometric", "normalisation", "note")
MAX_NAME_BYTES = 200  # file systems allow 255; flattened folder names can exceed it


@dataclass
class ConvertReport:
    out_dir: Path
    converted: list[tuple[LoadedImage, Path]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    cancelled: bool = False

    @property
    def report_path(self) -> Path:
        return self.out_dir / REPORT_NAME


def output_name(source: Path, roots: list[Path]) -> str:
    """A flat, collision-free PNG name from the path relative to the input it came from."""
    for root in roots:
        if is_folder(root):  # Path.is_dir raises for a too long name
            try:
                relative = source.resolve().relative_to(root.resolve())
                break
            except ValueError:
                continue
    else:
        relative = Path(source.name)
    stem = "__".join(relative.with_suffix("").parts) if relative.suffix else "__".join(
        relative.parts)
    return _safe_name(f"{stem}.png")


def _safe_name(name: str) -> str:
    """``name`` made fit for any file system, journal and spreadsheet: bytes that are not
    UTF-8 become ``_xNN``, a leading formula character gets ``_``, and a name too long
    (flattening deep folders with long names easily passes 255 bytes) becomes its start
    plus a hash of the whole."""
    text = display_path(name).replace("\\", "_")
    if text.startswith(FORMULA_STARTS):
        text = "_" + text
    raw = text.encode("utf-8")
    if len(raw) <= MAX_NAME_BYTES:
        return text
    digest = hashlib.sha256(raw).hexdigest()[:16]
    head = raw[:MAX_NAME_BYTES - len(digest) - 6].decode("utf-8", "ignore")
    return f"{head}_{digest}.png"


def convert_images(inputs: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                   progress: ProgressFn = no_progress, cancel: threading.Event | None = None,
                   overwrite: bool = False) -> ConvertReport:
    """Convert every readable image under ``inputs``; raises Cancelled after writing the
    report of what was done.

    A folder holding a finished conversion raises
    :class:`~cxrgan_desktop.core.output_lock.OutputFolderError` unless ``overwrite``.
    """
    roots = [Path(item) for item in inputs]
    out = Path(out_dir)
    with output_lock(out, "convert"):
        return _convert_locked(roots, out, progress, cancel, overwrite)


def _convert_locked(roots: list[Path], out: Path, progress: ProgressFn,
                    cancel: threading.Event | None, overwrite: bool) -> ConvertReport:
    earlier, finished = _earlier_outputs(out)
    if finished and not overwrite:
        raise OutputFolderError(
            f"{out} holds a finished conversion ({REPORT_NAME}, {len(earlier)} image(s)); "
            "overwrite it (--overwrite) or choose another folder")
    report = ConvertReport(out)
    # The report says "incomplete" before any earlier file goes or any new one lands.
    atomic_write_text(report.report_path, _report_csv(report, running=True))
    for name in earlier:
        (out / name).unlink(missing_ok=True)
    journal = out / JOURNAL_NAME
    used: set[str] = set()
    last_save = time.monotonic()
    try:
        with open(journal, "w", encoding="utf-8") as log:
            for item in scan_images(roots, progress, cancel):
                if isinstance(item, Skipped):
                    report.skipped.append(item)
                    continue
                name = output_name(item.source, roots)
                while name in used:  # the same file named twice on the command line
                    name = name[:-4] + "_dup.png"
                used.add(name)
                log.write(name + "\n")
                log.flush()  # in the kernel before the image exists: a kill cannot hide it
                write_png16(out / name, item.pixels)
                report.converted.append((item, out / name))
                if time.monotonic() - last_save > _SAVE_EVERY_S:
                    atomic_write_text(report.report_path, _report_csv(report, running=True))
                    last_save = time.monotonic()
    except BaseException as error:  # cancel, Ctrl-C, a full disk: report what is whole
        stopped = isinstance(error, Cancelled)
        report.cancelled = stopped
        try:
            atomic_write_text(report.report_path, _report_csv(report, running=not stopped))
        except OSError:
            pass  # the last report (marked incomplete) and the journal stay for the rerun
        else:
            if stopped:
                journal.unlink(missing_ok=True)  # the report names every file written
        raise
    atomic_write_text(report.report_path, _report_csv(report))
    journal.unlink(missing_ok=True)
    return report


def _earlier_outputs(out: Path) -> tuple[set[str], bool]:
    """The PNG names an earlier run wrote here (its report's and journal's), and whether it
    finished (a report without an incomplete or cancelled row, and no journal)."""
    names: set[str] = set()
    finished = False
    report = out / REPORT_NAME
    if report.exists():
        try:
            with open(report, encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, ValueError, csv.Error):
            rows = []
        names |= {r["output"] for r in rows if r.get("status") == "converted" and r.get("output")}
        # An unreadable or empty report counts as finished: it is replaced only when asked.
        finished = all(r.get("status") in ("converted", "skipped") for r in rows)
    journal = out / JOURNAL_NAME
    if journal.exists():
        finished = False
        with contextlib.suppress(OSError, UnicodeDecodeError):
            names |= {line for line in journal.read_text(encoding="utf-8").splitlines() if line}
    # Only flat .png names of files that exist: never a path that leaves the folder.
    return {n for n in names if n.endswith(".png") and os.path.basename(n) == n
            and (out / n).is_file()}, finished


def _report_csv(report: ConvertReport, running: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for image, output in report.converted:  # file names are text anyone may have chosen
        writer.writerow(["converted", spreadsheet_safe(display_path(image.source)),
                         output.name, image.sop_instance_uid or "",
                         image.file_format, image.width, image.height, image.photometric,
                         image.normalisation, spreadsheet_safe("; ".join(image.warnings))])
    for skipped in report.skipped:
        writer.writerow(["skipped", spreadsheet_safe(skipped.shown), "", "", "", "", "", "",
                         "", spreadsheet_safe(skipped.reason)])
    if report.cancelled:
        writer.writerow(["cancelled", "", "", "", "", "", "", "", "",
                         "the conversion was stopped; files after this point were not read"])
    elif running:
        writer.writerow(["incomplete", "", "", "", "", "", "", "", "", _INCOMPLETE_NOTE])
    return buffer.getvalue()
