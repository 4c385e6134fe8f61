"""The phantom job: write a folder of synthetic radiographs with a ChestX-ray14 label file.

Why: tests, demos, FID checks and classifier training need labelled chest images, and the
real ones cannot ship. Image ``k`` depends only on ``(seed, k)``, so a run of 100 and the first
100 of a run of 1000 are identical, and a cancelled run can be resumed or extended into the same
folder. Files are written whole (atomically); the label file and manifest always describe
exactly the images present.

:func:`contact_sheet` draws the labelled examples of ``docs/phantom_examples.png``::

    python -c "from cxrgan_desktop.imaging.phantom.job import contact_sheet as c; \\
               c('docs/phantom_examples.png')"

Folder layout::

    phantom_00000.png ...     16-bit grayscale PNG, MONOCHROME2
    Data_Entry_phantom.csv    ChestX-ray14 v2020 layout (PA, synthetic patient ids)
    manifest.json             seed, n, size, software version, label distribution
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import cxrgan_desktop
from cxrgan_desktop.fileio import atomic_write_json
from cxrgan_desktop.imaging.chestxray14 import DataEntry, write_data_entry_csv
from cxrgan_desktop.imaging.phantom.anatomy import FIELD_OF_VIEW_MM
from cxrgan_desktop.imaging.phantom.labels import LabelDistribution
from cxrgan_desktop.imaging.phantom.render import (
    patient_anatomy,
    render_phantom,
    render_phantom_detailed,
)
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.jobs import Cancelled, ProgressFn, check_cancel, no_progress

log = logging.getLogger(__name__)

CSV_NAME = "Data_Entry_phantom.csv"
MANIFEST_NAME = "manifest.json"
FORMAT = "cxrgan-phantom-set/1"
PATIENT_ID_OFFSET = 900_000  # synthetic patient ids cannot collide with ChestX-ray14 ids (<= 30805)
_SAVE_EVERY_S = 2.0


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
              distribution: LabelDistribution) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "software": "cxrgan-desktop",
        "software_version": cxrgan_desktop.__version__,
        "seed": int(seed),
        "n": int(n_written),
        "n_requested": int(n_requested),
        "size": int(size),
        "pixel_spacing_mm": pixel_spacing_mm(size),
        "image_format": "16-bit grayscale PNG, MONOCHROME2, [0, 65535] = [black, white]",
        "label_file": CSV_NAME,
        "label_distribution": distribution.to_json(),
        "note": "synthetic chest phantoms; not images of real patients",
    }


def _check_existing(out_dir: Path, seed: int, size: int, distribution: LabelDistribution) -> int:
    """How many images an earlier compatible run left; raises if the folder holds another set."""
    path = out_dir / MANIFEST_NAME
    if not path.exists():
        if any(out_dir.glob("phantom_*.png")):
            raise ValueError(f"{out_dir} holds phantom images but no {MANIFEST_NAME}; "
                             "choose an empty folder")
        return 0
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable manifest ({exc}); choose an empty folder") from exc
    mine = {"seed": int(seed), "size": int(size), "label_distribution": distribution.to_json()}
    theirs = {key: old.get(key) for key in mine}
    if old.get("format") != FORMAT or theirs != json.loads(json.dumps(mine)):
        raise ValueError(f"{out_dir} holds a phantom set with other settings (seed, size or "
                         "label distribution); choose another folder to keep both")
    return int(old.get("n", 0))


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
    kept (not re-rendered), so a cancelled run resumes and a finished one extends. On cancel
    :class:`~cxrgan_desktop.jobs.Cancelled` is raised after the label file and manifest have
    been written for the images completed.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    dist = distribution if distribution is not None else LabelDistribution.chestxray14()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    already = _check_existing(folder, seed, size, dist)
    spacing = pixel_spacing_mm(size)
    entries: list[DataEntry] = []
    last_save = time.monotonic()

    def save() -> None:
        write_data_entry_csv(folder / CSV_NAME, entries)
        atomic_write_json(folder / MANIFEST_NAME,
                          _manifest(seed, max(n, already), max(len(entries), already), size, dist))

    try:
        for k in range(max(n, already)):
            check_cancel(cancel)
            labels, rng = phantom_item(seed, k, size, dist)
            path = folder / image_name(k)
            if k < already and path.exists():
                a = patient_anatomy(rng)  # kept from the earlier run: labels and patient only
            else:
                rendered = render_phantom_detailed(size, labels, rng)
                write_png16(path, rendered.image)
                a = rendered.anatomy
            entries.append(DataEntry(
                image_index=image_name(k), findings=labels, follow_up=0,
                patient_id=PATIENT_ID_OFFSET + k, age=a.age, gender="F" if a.female else "M",
                view_position="PA", width=size, height=size,
                pixel_spacing_x=spacing, pixel_spacing_y=spacing))
            progress((k + 1) / max(n, 1), f"phantom {k + 1} of {n}")
            if time.monotonic() - last_save > _SAVE_EVERY_S:
                save()
                last_save = time.monotonic()
    except BaseException as exc:  # cancel, Ctrl-C, a full disk: describe what was written
        save()
        if isinstance(exc, Cancelled):
            log.info("phantom job cancelled after %d images in %s", len(entries), folder)
        raise
    save()
    log.info("wrote %d phantoms (%d px, seed %d) to %s", len(entries), size, seed, folder)
    return folder


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
