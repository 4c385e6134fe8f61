"""The conversion job: any readable images -> normalised 16-bit PNGs with a report.

Shared by ``cxrgan convert`` and the GUI. The report (``conversion_report.csv``) has one row
per input file: what was read and how it was normalised, or why it was skipped. Output names
keep the inputs' folder structure (``a/b/c.dcm`` -> ``a__b__c.png``) so that two inputs with
the same name in different folders do not collide.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cxrgan_desktop.fileio import atomic_write_text
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.imaging.readers import (
    LoadedImage,
    Skipped,
    display_path,
    is_folder,
    scan_images,
)
from cxrgan_desktop.jobs import Cancelled, ProgressFn, no_progress

REPORT_NAME = "conversion_report.csv"
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
    return _short_enough(f"{stem}.png")


def _short_enough(name: str) -> str:
    """``name``, or its start plus a hash of the whole when it is too long for a file
    system (flattening deep folders with long names easily passes 255 bytes)."""
    raw = os.fsencode(name)
    if len(raw) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:16]
    head = raw[:MAX_NAME_BYTES - len(digest) - 6].decode("utf-8", "ignore")
    return f"{head}_{digest}.png"


def convert_images(inputs: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str],
                   progress: ProgressFn = no_progress, cancel: threading.Event | None = None
                   ) -> ConvertReport:
    """Convert every readable image under ``inputs``; raises Cancelled after writing the
    report of what was done."""
    roots = [Path(item) for item in inputs]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = ConvertReport(out)
    used: set[str] = set()
    try:
        for item in scan_images(roots, progress, cancel):
            if isinstance(item, Skipped):
                report.skipped.append(item)
                continue
            name = output_name(item.source, roots)
            while name in used:  # the same file named twice on the command line
                name = name[:-4] + "_dup.png"
            used.add(name)
            write_png16(out / name, item.pixels)
            report.converted.append((item, out / name))
    except Cancelled:
        report.cancelled = True
        raise
    finally:
        atomic_write_text(report.report_path, _report_csv(report))
    return report


def _report_csv(report: ConvertReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REPORT_COLUMNS)
    for image, output in report.converted:
        writer.writerow(["converted", display_path(image.source), display_path(output.name),
                         image.sop_instance_uid or "",
                         image.file_format, image.width, image.height, image.photometric,
                         image.normalisation, "; ".join(image.warnings)])
    for skipped in report.skipped:
        writer.writerow(["skipped", skipped.shown, "", "", "", "", "", "", "", skipped.reason])
    if report.cancelled:
        writer.writerow(["cancelled", "", "", "", "", "", "", "", "",
                         "the conversion was stopped; files after this point were not read"])
    return buffer.getvalue()
