"""The phantom job: write a folder of synthetic radiographs with a ChestX-ray14 label file.

Why: tests, demos, FID checks and classifier training need labelled chest images, and the
real ones cannot ship. Image ``k`` depends only on ``(seed, k)``, so a run of 100 and the first
100 of a run of 1000 are identical, and a cancelled or killed run is resumed, or a finished one
extended, by running the same command into the same folder.

The folder is locked while the job writes it. Before the first image, the manifest (with
``"complete": false``) names the settings, so a folder never holds images of unknown settings.
Images are written whole (atomically). The label file and manifest are rebuilt from the images
actually present and written together (both temporary files first, then both renames, so a
full disk changes neither); a kill can leave them behind the images on disk, and the next run
lists those images (it does not render them again) and removes orphaned temporary files.

:func:`contact_sheet` draws the labelled examples of ``docs/phantom_examples.png``::

    python -c "from cxrgan_desktop.tasks.phantom import contact_sheet as c; \\
               c('docs/phantom_examples.png')"

Folder layout::

    phantom_00000.png ...     16-bit grayscale PNG, MONOCHROME2
    Data_Entry_phantom.csv    ChestX-ray14 v2020 layout (PA, synthetic patient ids)
    manifest.json             seed, n, size, software version, label distribution
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import cxrgan_desktop
from cxrgan_desktop.core.fileio import atomic_write_many
from cxrgan_desktop.core.jobs import Cancelled, ProgressFn, check_cancel, no_progress
from cxrgan_desktop.core.output_lock import OutputFolderError, output_lock
from cxrgan_desktop.imaging.phantom.anatomy import FIELD_OF_VIEW_MM
from cxrgan_desktop.imaging.phantom.render import (
    patient_anatomy,
    render_phantom,
    render_phantom_detailed,
)
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.labels.chestxray14 import DataEntry, data_entry_csv_text
from cxrgan_desktop.labels.distribution import LabelDistribution

log = logging.getLogger(__name__)

CSV_NAME = "Data_Entry_phantom.csv"
MANIFEST_NAME = "manifest.json"
FORMAT = "cxrgan-phantom-set/1"
PATIENT_ID_OFFSET = 900_000  # synthetic patient ids cannot collide with ChestX-ray14 ids (<= 30805)
_SAVE_EVERY_S = 2.0
_IMAGE_RE = re.compile(r"^phantom_(\d{5,})\.png$")


def image_name(k: int) -> str:
    """File name of image ``k``."""
    return f"phantom_{k:05d}.png"


def pixel_spacing_mm(size: int) -> float:
    """Pixel spacing of a phantom of ``size`` pixels (the field of view is fixed)."""
    return FIELD_OF_VIEW_MM / size


def phantom_item(seed: int, k: int, size: int, distribution: LabelDistribution
                 ) -> tuple[frozenset[str], np.random.Generator]:
    """Labels of image ``k`` and the generator that renders it; a function of (seed, k) only.

    The labels come from their own child stream, so they can be recomputed without rendering
    (that is how a resumed run rebuilds its label file).
    """
    label_seq, render_seq = np.random.SeedSequence([seed, k]).spawn(2)
    labels = distribution.sample(np.random.default_rng(label_seq))
    return labels, np.random.default_rng(render_seq)


def _manifest(seed: int, n_requested: int, n_written: int, size: int,
              distribution: LabelDistribution, complete: bool = False) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "software": "cxrgan-desktop",
        "software_version": cxrgan_desktop.__version__,
        "seed": int(seed),
        "n": int(n_written),
        "n_requested": int(n_requested),
        "complete": bool(complete),
        "size": int(size),
        "pixel_spacing_mm": pixel_spacing_mm(size),
        "image_format": "16-bit grayscale PNG, MONOCHROME2, [0, 65535] = [black, white]",
        "label_file": CSV_NAME,
        "label_distribution": distribution.to_json(),
        "note": "synthetic chest phantoms; not images of real patients",
    }


def _present(folder: Path) -> set[int]:
    """Indices of the phantom images in ``folder`` (whole: every one was written atomically)."""
    found = set()
    for entry in os.scandir(folder):
        match = _IMAGE_RE.match(entry.name)
        if match and entry.is_file():
            found.add(int(match.group(1)))
    return found


def _check_existing(out_dir: Path, seed: int, size: int, distribution: LabelDistribution,
                    present: set[int]) -> None:
    """Raise unless the folder is new or holds a set with the same settings."""
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        if present:
            raise OutputFolderError(f"{out_dir} holds phantom images but no {MANIFEST_NAME} "
                                    "(their settings are unknown); choose an empty folder")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputFolderError(f"{path}: unreadable manifest ({exc}); choose an empty "
                                "folder") from exc
    mine = {"seed": int(seed), "size": int(size), "label_distribution": distribution.to_json()}
    theirs = {key: old.get(key) for key in mine} if isinstance(old, dict) else {}
    if not isinstance(old, dict) or old.get("format") != FORMAT \
            or theirs != json.loads(json.dumps(mine)):
        raise OutputFolderError(f"{out_dir} holds a phantom set with other settings (seed, "
                                "size or label distribution); choose another folder to keep "
                                "both")


def write_phantoms(
    out_dir: str | os.PathLike[str],
    n: int,
    size: int,
    seed: int,
    distribution: LabelDistribution | None = None,
    progress: ProgressFn = no_progress,
    cancel: threading.Event | None = None,
) -> Path:
    """Write ``n`` phantoms of ``size`` x ``size`` pixels into ``out_dir``; return the folder.

    Images already present from an earlier run with the same seed, size and distribution are
    kept (not re-rendered), so a cancelled or killed run resumes and a finished one extends
    (a folder that already holds more than ``n`` keeps and lists them all). On cancel
    :class:`~cxrgan_desktop.core.jobs.Cancelled` is raised after the label file and manifest have
    been written for the images present. Raises
    :class:`~cxrgan_desktop.core.output_lock.OutputFolderError` for a folder holding another set
    or being written by another process.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    dist = distribution if distribution is not None else LabelDistribution.chestxray14()
    folder = Path(out_dir)
    with output_lock(folder, "phantom"):
        _write_locked(folder, n, size, seed, dist, progress, cancel)
    return folder


def _write_locked(folder: Path, n: int, size: int, seed: int, dist: LabelDistribution,
                  progress: ProgressFn, cancel: threading.Event | None) -> None:
    present = _present(folder)
    _check_existing(folder, seed, size, dist, present)
    total = max([n, *(k + 1 for k in present)])
    spacing = pixel_spacing_mm(size)
    entries: dict[int, DataEntry] = {}

    def entry(k: int, labels: frozenset[str], a: Any) -> DataEntry:
        return DataEntry(
            image_index=image_name(k), findings=labels, follow_up=0,
            patient_id=PATIENT_ID_OFFSET + k, age=a.age, gender="F" if a.female else "M",
            view_position="PA", width=size, height=size,
            pixel_spacing_x=spacing, pixel_spacing_y=spacing)

    def save(complete: bool = False) -> None:
        rows = [entries[k] for k in sorted(entries)]
        atomic_write_many({
            folder / CSV_NAME: data_entry_csv_text(rows).encode(),
            folder / MANIFEST_NAME: (json.dumps(_manifest(
                seed, total, len(rows), size, dist, complete), indent=2) + "\n").encode()})

    for k in sorted(present):  # kept from an earlier run: labels and patient only
        labels, rng = phantom_item(seed, k, size, dist)
        entries[k] = entry(k, labels, patient_anatomy(rng))
    save()  # the settings are on disk, marked incomplete, before the first new image
    last_save = time.monotonic()
    try:
        for k in range(total):
            check_cancel(cancel)
            if k in entries:
                continue
            labels, rng = phantom_item(seed, k, size, dist)
            rendered = render_phantom_detailed(size, labels, rng)
            write_png16(folder / image_name(k), rendered.image)
            entries[k] = entry(k, labels, rendered.anatomy)
            progress((k + 1) / max(total, 1), f"phantom {k + 1} of {total}")
            if time.monotonic() - last_save > _SAVE_EVERY_S:
                save()
                last_save = time.monotonic()
    except BaseException as exc:  # cancel, Ctrl-C, a full disk: describe what was written
        with contextlib.suppress(OSError):  # a full disk keeps the last pair (consistent)
            save()
        if isinstance(exc, Cancelled):
            log.info("phantom job cancelled after %d images in %s", len(entries), folder)
        raise
    save(complete=True)
    log.info("wrote %d phantoms (%d px, seed %d) to %s", len(entries), size, seed, folder)


# -- documentation image ------------------------------------------------------------------

DEFAULT_PANELS: tuple[tuple[str, frozenset[str], int], ...] = (
    ("Normal", frozenset(), 11),
    ("Cardiomegaly", frozenset({"Cardiomegaly"}), 11),
    ("Effusion", frozenset({"Effusion"}), 13),
    ("Pneumothorax", frozenset({"Pneumothorax"}), 12),
    ("Nodule + Mass", frozenset({"Nodule", "Mass"}), 14),
    ("Consolidation", frozenset({"Consolidation"}), 15),
    ("Edema", frozenset({"Edema"}), 16),
    ("Emphysema", frozenset({"Emphysema"}), 17),
    ("Atelectasis + Hernia", frozenset({"Atelectasis", "Hernia"}), 18),
)


def contact_sheet(path: str | Path,
                  panels: Sequence[tuple[str, frozenset[str], int]] = DEFAULT_PANELS,
                  columns: int = 3, tile: int = 400, render_size: int = 512) -> Path:
    """Render each ``(title, findings, seed)`` panel and save an 8-bit grayscale grid.

    Each phantom is rendered at ``render_size`` (seed -> the same patient at any size) and
    resized to ``tile`` pixels; the title is written in the bottom-left corner.
    """
    rows = -(-len(panels) // columns)
    sheet = Image.new("L", (columns * tile, rows * tile), 0)
    font = ImageFont.load_default(size=max(10, tile // 18))
    for i, (title, findings, seed) in enumerate(panels):
        image = render_phantom(render_size, frozenset(findings), np.random.default_rng(seed))
        im = Image.fromarray(np.round(image * 255).astype(np.uint8)).resize(
            (tile, tile), Image.LANCZOS)
        draw = ImageDraw.Draw(im)
        label = f"{title} (seed {seed})"
        x, y = tile // 60, tile - tile // 14 - tile // 60
        draw.text((x + 1, y + 1), label, fill=0, font=font)
        draw.text((x, y), label, fill=255, font=font)
        sheet.paste(im, ((i % columns) * tile, (i // columns) * tile))
    path = Path(path)
    sheet.save(path, optimize=True)
    return path
