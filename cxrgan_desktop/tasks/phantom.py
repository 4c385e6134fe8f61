"""The phantom job: write a folder of synthetic patients' radiographs with a ChestX-ray14
label file.

Why: tests, demos, FID checks, classifier training and memorisation audits need labelled chest
images of patients with several films each, and the real ones cannot ship. The set is
patient by patient (``phantom_patients.py``): patient ``p`` has a number of follow-ups drawn
from ``(seed, p)`` (ChestX-ray14-like by default, or a fixed number), and image ``(p, f)``
depends only on ``(seed, p, f)``: follow-up 0 is the patient's first film
(``render_phantom_detailed``), later ones are follow-up films of the same anatomy
(``imaging.phantom.followup``). So a run of 100 images is the first 100 of a run of 1000 (the
last patient may be cut short), and a cancelled or killed run is resumed, or a finished one
extended, by running the same command into the same folder.

The folder is locked while the job writes it. Before the first image, the manifest (with
``"complete": false``) names the settings, so a folder never holds images of unknown settings.
Images are written whole (atomically). The label file and manifest are rebuilt from the images
actually present and written together (both temporary files first, then both renames, so a
full disk changes neither); a kill can leave them behind the images on disk, and the next run
lists those images (it does not render them again) and removes orphaned temporary files.
A folder holding a format-1 set (``phantom_00000.png``: one image per patient) is refused,
not mixed; it stays readable as an ordinary image folder.

:func:`contact_sheet` draws the labelled examples of ``docs/phantom_examples.png`` and
:func:`follow_up_sheet` the patients of ``docs/phantom_follow_ups.png``::

    python -c "from cxrgan_desktop.tasks.phantom import contact_sheet as c; \\
               c('docs/phantom_examples.png')"
    python -c "from cxrgan_desktop.tasks.phantom import follow_up_sheet as c; \\
               c('docs/phantom_follow_ups.png')"

Folder layout::

    00900000_000.png ...      16-bit grayscale PNG, MONOCHROME2; {patient id}_{follow-up}
    Data_Entry_phantom.csv    ChestX-ray14 v2020 layout (PA; Patient ID 900000 + p,
                              Follow-up # f)
    manifest.json             seed, images and patients, size, images per patient,
                              software version, label distribution
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
from cxrgan_desktop.imaging.phantom.anatomy import FIELD_OF_VIEW_MM, Anatomy
from cxrgan_desktop.imaging.phantom.followup import (
    PhantomPatient,
    phantom_patient,
    render_follow_up,
)
from cxrgan_desktop.imaging.phantom.render import (
    patient_anatomy,
    render_phantom,
    render_phantom_detailed,
)
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.labels.chestxray14 import DataEntry, data_entry_csv_text
from cxrgan_desktop.labels.distribution import LabelDistribution
from cxrgan_desktop.tasks.phantom_patients import (
    CHESTXRAY14,
    PATIENT_ID_OFFSET,
    ImagesPerPatient,
    age_at,
    check_images_per_patient,
    describe,
    image_name,
    image_seeds,
    layout,
    parse_image_name,
    patient_starts,
)

log = logging.getLogger(__name__)

CSV_NAME = "Data_Entry_phantom.csv"
MANIFEST_NAME = "manifest.json"
FORMAT = "cxrgan-phantom-set/2"
FORMAT_1 = "cxrgan-phantom-set/1"
_SAVE_EVERY_S = 2.0
_FORMAT_1_IMAGE_RE = re.compile(r"^phantom_(\d{5,})\.png$")

def pixel_spacing_mm(size: int) -> float:
    """Pixel spacing of a phantom of ``size`` pixels (the field of view is fixed)."""
    return FIELD_OF_VIEW_MM / size


def phantom_labels(seed: int, patient: int, follow_up: int, distribution: LabelDistribution
                   ) -> tuple[frozenset[str], np.random.Generator]:
    """Labels of image ``(patient, follow_up)`` and the generator that renders it; a function
    of (seed, patient, follow_up) only.

    The labels come from their own child stream, so they can be recomputed without rendering
    (that is how a resumed run rebuilds its label file). For follow-up 0 the generator draws
    the patient (:func:`~cxrgan_desktop.imaging.phantom.followup.phantom_patient`).
    """
    label_seq, render_seq = image_seeds(seed, patient, follow_up)
    labels = distribution.sample(np.random.default_rng(label_seq))
    return labels, np.random.default_rng(render_seq)


def _patient(seed: int, patient: int, distribution: LabelDistribution) -> PhantomPatient:
    labels, rng = phantom_labels(seed, patient, 0, distribution)
    return phantom_patient(rng, labels)


def _manifest(seed: int, n_requested: int, n_written: int, patients: int, size: int,
              distribution: LabelDistribution, images_per_patient: ImagesPerPatient,
              complete: bool = False) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "software": "cxrgan-desktop",
        "software_version": cxrgan_desktop.__version__,
        "seed": int(seed),
        "n": int(n_written),
        "patients": int(patients),
        "n_requested": int(n_requested),
        "complete": bool(complete),
        "size": int(size),
        "images_per_patient": images_per_patient,
        "images_per_patient_distribution": describe(images_per_patient),
        "file_names": "{patient id:08d}_{follow-up:03d}.png, patient id = "
                      f"{PATIENT_ID_OFFSET} + patient",
        "pixel_spacing_mm": pixel_spacing_mm(size),
        "image_format": "16-bit grayscale PNG, MONOCHROME2, [0, 65535] = [black, white]",
        "label_file": CSV_NAME,
        "label_distribution": distribution.to_json(),
        "note": "synthetic chest phantoms; not images of real patients",
    }


def _present(folder: Path) -> set[tuple[int, int]]:
    """``(patient, follow_up)`` of the phantom images in ``folder`` (whole: each was written
    atomically); refuses a format-1 set."""
    found = set()
    format_1 = None
    for entry in os.scandir(folder):
        parsed = parse_image_name(entry.name)
        if parsed is not None and entry.is_file():
            found.add(parsed)
        elif format_1 is None and _FORMAT_1_IMAGE_RE.match(entry.name):
            format_1 = entry.name
    if format_1 is not None:
        _refuse_format_1(folder, f"it holds {format_1}")
    return found


def _refuse_format_1(folder: Path, why: str) -> None:
    raise OutputFolderError(
        f"{folder} holds a format-1 phantom set ({why}: one image per patient, named "
        f"phantom_NNNNN.png); this version writes {FORMAT} (patients with follow-ups, "
        "named 00900000_000.png) and does not mix the two in one folder: choose a new "
        "folder (the old set stays readable as an ordinary image folder)")


def _check_existing(out_dir: Path, seed: int, size: int, distribution: LabelDistribution,
                    images_per_patient: ImagesPerPatient, present: set[tuple[int, int]]
                    ) -> None:
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
    if isinstance(old, dict) and old.get("format") == FORMAT_1:
        _refuse_format_1(out_dir, f"its {MANIFEST_NAME} says {FORMAT_1}")
    mine = {"seed": int(seed), "size": int(size), "label_distribution": distribution.to_json(),
            "images_per_patient": images_per_patient}
    theirs = {key: old.get(key) for key in mine} if isinstance(old, dict) else {}
    if not isinstance(old, dict) or old.get("format") != FORMAT \
            or theirs != json.loads(json.dumps(mine)):
        raise OutputFolderError(f"{out_dir} holds a phantom set with other settings (seed, "
                                "size, images per patient or label distribution); choose "
                                "another folder to keep both")


def write_phantoms(
    out_dir: str | os.PathLike[str],
    n: int,
    size: int,
    seed: int,
    distribution: LabelDistribution | None = None,
    progress: ProgressFn = no_progress,
    cancel: threading.Event | None = None,
    images_per_patient: ImagesPerPatient = CHESTXRAY14,
) -> Path:
    """Write ``n`` phantom images of ``size`` x ``size`` pixels into ``out_dir``, patient by
    patient; return the folder.

    ``images_per_patient``: ``"chestxray14"`` (mean 3.64, most patients one or two, a few up
    to 50; see ``phantom_patients.py``) or a whole number K (every patient K images; 1 gives
    the images a format-1 set held, under the new names). Images already present from an
    earlier run with the same settings are kept (not re-rendered), so a cancelled or killed
    run resumes and a finished one extends (a folder that already holds more than ``n``
    keeps and lists them all). On cancel :class:`~cxrgan_desktop.core.jobs.Cancelled` is
    raised after the label file and manifest have been written for the images present.
    Raises :class:`~cxrgan_desktop.core.output_lock.OutputFolderError` for a folder holding
    another set (a format-1 set included) or being written by another process.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    per_patient = check_images_per_patient(images_per_patient)
    dist = distribution if distribution is not None else LabelDistribution.chestxray14()
    folder = Path(out_dir)
    with output_lock(folder, "phantom"):
        _write_locked(folder, n, size, seed, dist, per_patient, progress, cancel)
    return folder


def _write_locked(folder: Path, n: int, size: int, seed: int, dist: LabelDistribution,
                  per_patient: ImagesPerPatient, progress: ProgressFn,
                  cancel: threading.Event | None) -> None:
    present = _present(folder)
    _check_existing(folder, seed, size, dist, per_patient, present)
    starts = patient_starts(seed, per_patient, max((p + 1 for p, _ in present), default=0))
    total = n
    for p, f in present:
        if starts[p] + f >= starts[p + 1]:
            raise OutputFolderError(f"{folder / image_name(p, f)} is not an image of this "
                                    "set (the patient has fewer follow-ups); choose another "
                                    "folder")
        total = max(total, int(starts[p]) + f + 1)
    order = layout(seed, per_patient, total)
    spacing = pixel_spacing_mm(size)
    entries: dict[int, DataEntry] = {}

    def entry(p: int, f: int, labels: frozenset[str], a: Anatomy) -> DataEntry:
        return DataEntry(
            image_index=image_name(p, f), findings=labels, follow_up=f,
            patient_id=PATIENT_ID_OFFSET + p, age=age_at(a.age, f),
            gender="F" if a.female else "M", view_position="PA", width=size, height=size,
            pixel_spacing_x=spacing, pixel_spacing_y=spacing)

    def save(complete: bool = False) -> None:
        rows = [entries[k] for k in sorted(entries)]
        patients = len({row.patient_id for row in rows})
        atomic_write_many({
            folder / CSV_NAME: data_entry_csv_text(rows).encode(),
            folder / MANIFEST_NAME: (json.dumps(_manifest(
                seed, total, len(rows), patients, size, dist, per_patient, complete),
                indent=2) + "\n").encode()})

    anatomies: dict[int, Anatomy] = {}
    for k, (p, f) in enumerate(order):  # kept from an earlier run: labels and patient only
        if (p, f) in present:
            labels, _ = phantom_labels(seed, p, f, dist)
            if p not in anatomies:
                anatomies[p] = patient_anatomy(phantom_labels(seed, p, 0, dist)[1])
            entries[k] = entry(p, f, labels, anatomies[p])
    save()  # the settings are on disk, marked incomplete, before the first new image
    last_save = time.monotonic()
    patient: dict[int, PhantomPatient] = {}  # the one being written
    try:
        for k, (p, f) in enumerate(order):
            check_cancel(cancel)
            if k in entries:
                continue
            labels, rng = phantom_labels(seed, p, f, dist)
            if f == 0:
                rendered = render_phantom_detailed(size, labels, rng)
            else:
                if p not in patient:
                    patient = {p: _patient(seed, p, dist)}
                rendered = render_follow_up(size, labels, patient[p], rng)
            write_png16(folder / image_name(p, f), rendered.image)
            entries[k] = entry(p, f, labels, rendered.anatomy)
            progress((k + 1) / max(total, 1),
                     f"image {k + 1} of {total} ({image_name(p, f)})")
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
    log.info("wrote %d phantom images of %d patients (%d px, seed %d) to %s", len(entries),
             len({p for p, _ in order}), size, seed, folder)


def set_counts(folder: str | os.PathLike[str]) -> tuple[int, int]:
    """``(images, patients)`` a phantom set's manifest records."""
    manifest = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    return int(manifest["n"]), int(manifest["patients"])


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


def follow_up_sheet(path: str | Path, patients: Sequence[int] = (0, 1, 2), follow_ups: int = 4,
                    seed: int = 0, tile: int = 256, render_size: int = 256) -> Path:
    """Draw films ``(p, 0..follow_ups - 1)`` of each patient ``p``, a row per patient, as
    ``write_phantoms(seed=seed, images_per_patient=follow_ups)`` writes them (each film with
    its own findings, named in the corner): the same anatomy along a row, a new patient in
    each row. Saved as an 8-bit grayscale grid."""
    dist = LabelDistribution.chestxray14()
    sheet = Image.new("L", (follow_ups * tile, len(patients) * tile), 0)
    font = ImageFont.load_default(size=max(10, tile // 18))
    for row, p in enumerate(patients):
        patient = _patient(seed, p, dist)
        for f in range(follow_ups):
            labels, rng = phantom_labels(seed, p, f, dist)
            image = (render_phantom(render_size, labels, rng) if f == 0
                     else render_follow_up(render_size, labels, patient, rng).image)
            im = Image.fromarray(np.round(image * 255).astype(np.uint8)).resize(
                (tile, tile), Image.LANCZOS)
            draw = ImageDraw.Draw(im)
            label = image_name(p, f)[:-4]
            x, y = tile // 60, tile - tile // 14 - tile // 60
            draw.text((x + 1, y + 1), label, fill=0, font=font)
            draw.text((x, y), label, fill=255, font=font)
            sheet.paste(im, (f * tile, row * tile))
    path = Path(path)
    sheet.save(path, optimize=True)
    return path
