"""Patients kept out of a generator's training, chosen once and recorded in the run folder.

Why: the memorisation audit asks "is this generated image closer to a training image than a
new patient's image would be?". Answering that needs real patients the generator never saw,
from the same folder, scanner and preprocessing as the training set. A run can therefore keep
a patient-wise fraction of its training folder out (``hold_out_fraction``) and records exactly
which images in ``held_out.json``, so that the audit of the run, or of a model exported from
it, can calibrate on them.

Whole patients are held out (follow-up images of one patient look alike, and one left in
training would make its held-out sibling look "memorised"). Patients come from the label
file's ``Patient ID`` when the run has one, else from ChestX-ray14 file names
(``00000013_005.png``); any other name counts as its own patient, and the record says how
many did. The choice is :func:`~cxrgan_desktop.engine.classifier.data.patient_split`'s rule:
a seeded permutation of the patients, dealt until the fraction of images is reached. It
depends on nothing but the listing and the seed, so every torchrun rank, and every resume,
gets the same set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop.core.fileio import atomic_write_json, read_json_object
from cxrgan_desktop.engine.classifier.data import patient_split
from cxrgan_desktop.engine.training.dataset import DatasetListing
from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv
from cxrgan_desktop.metrics.relative_fd import patient_id_of

HELD_OUT_JSON = "held_out.json"
HELD_OUT_FORMAT = "cxrgan-held-out/1"
_OWN_PATIENT = "file:"  # key prefix of an image whose patient is unknown


@dataclass(frozen=True)
class HeldOut:
    """The images a run kept out of training. ``files`` are paths relative to ``image_dir``
    (``/`` separators, sorted); ``patient_ids`` are sorted; ``images_total`` and
    ``patients_total`` count the listing the choice was made from."""

    fraction: float
    seed: int
    image_dir: str
    patient_ids: tuple[str, ...]
    files: tuple[str, ...]
    method: str
    images_total: int = 0
    patients_total: int = 0

    @property
    def files_sha256(self) -> str:
        """SHA-256 (hex) of the held-out list as UTF-8 text: each relative path followed by
        a newline, in sorted order (so ``sort held.txt | sha256sum`` reproduces it)."""
        text = "".join(f"{rel}\n" for rel in self.files)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def summary(self) -> dict[str, Any]:
        """What run manifests and model provenance carry: enough for an audit to know a
        hold-out exists and to check it has the right list."""
        return {"fraction": self.fraction, "seed": self.seed, "images": len(self.files),
                "patients": len(self.patient_ids), "files_sha256": self.files_sha256,
                "record": HELD_OUT_JSON}

    def to_json(self) -> dict[str, Any]:
        return {"format": HELD_OUT_FORMAT, "fraction": self.fraction, "seed": self.seed,
                "image_dir": self.image_dir, "method": self.method,
                "images_total": self.images_total, "patients_total": self.patients_total,
                "images": len(self.files), "patients": len(self.patient_ids),
                "files_sha256": self.files_sha256,
                "patient_ids": list(self.patient_ids), "files": list(self.files)}


def patient_keys(listing: DatasetListing) -> tuple[list[str], int, str]:
    """One patient key per listed file, how many files are their own patient, and where the
    keys came from (for the record). Label file: ``Patient ID`` as 8 digits (the ChestX-ray14
    name's spelling, so both sources agree); names: the ChestX-ray14 name's patient part;
    otherwise ``file:<relative path>``."""
    rel_paths = listing.relative_paths()
    if listing.spec.labels_csv is not None:
        by_name: dict[str, int] = {}
        for entry in read_data_entry_csv(listing.spec.labels_csv):
            by_name.setdefault(entry.image_index, entry.patient_id)  # first row, as listed
        keys, own = [], 0
        for path, rel in zip(listing.files, rel_paths, strict=True):
            patient = by_name.get(path.name)
            if patient is None:  # cannot happen for a listing made with this label file
                keys.append(_OWN_PATIENT + rel)
                own += 1
            else:
                keys.append(f"{patient:08d}")
        return keys, own, f"'Patient ID' of {listing.spec.labels_csv.name}"
    keys, own = [], 0
    for rel in rel_paths:
        patient = patient_id_of(rel)
        if patient is None:
            keys.append(_OWN_PATIENT + rel)
            own += 1
        else:
            keys.append(patient)
    return keys, own, "ChestX-ray14 file names (NNNNNNNN_FFF.png)"


def choose_held_out(listing: DatasetListing, fraction: float, seed: int) -> HeldOut:
    """Whole patients holding at least ``fraction`` of the listed images (by at most one
    patient's images more), chosen by a permutation drawn from ``seed``; at least one
    patient stays in training. ``ValueError`` for a fraction outside (0, 1), a negative seed
    or fewer than two patients."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    if seed < 0:
        raise ValueError(f"the hold-out seed must not be negative, got {seed}")
    keys, own, source = patient_keys(listing)
    # patient_split wants integers: number the patients in sorted key order (deterministic)
    patients = sorted(set(keys))
    code = {key: i for i, key in enumerate(patients)}
    try:
        _, held = patient_split(np.array([code[k] for k in keys], dtype=np.int64), fraction,
                                seed)
    except ValueError as error:
        raise ValueError(f"{listing.root}: cannot hold out patients: {error}") from error
    rel_paths = listing.relative_paths()
    files = sorted(rel_paths[i] for i in held)
    held_patients = sorted({keys[i] for i in held})
    method = (f"whole patients (from {source}) in the order of "
              f"numpy.random.default_rng({seed}).permutation of the patients numbered in "
              f"sorted order, taken until at least {fraction:g} of the {len(keys)} images "
              "are held out; at least one patient stays in training")
    if own:
        method += (f"; {own} of {len(keys)} images have no patient id and each counts as "
                   "its own patient (follow-up images of one patient may then fall on both "
                   "sides)")
    return HeldOut(fraction=float(fraction), seed=int(seed), image_dir=str(listing.root),
                   patient_ids=tuple(held_patients), files=tuple(files), method=method,
                   images_total=len(keys), patients_total=len(patients))


def training_rows(cache_files: Sequence[str], listing: DatasetListing, held: HeldOut
                  ) -> np.ndarray:
    """Rows of an image cache (``cache_files``: its relative paths, in row order) that the
    generator may train on: not a held-out file, and not an image of a held-out patient
    (an image added to the folder after the choice is still kept out if its patient is)."""
    keys, _, _ = patient_keys(listing)
    key_of = dict(zip(listing.relative_paths(), keys, strict=True))
    files, patients = set(held.files), set(held.patient_ids)
    keep = [i for i, rel in enumerate(cache_files)
            if rel not in files and key_of.get(rel, _name_key(rel)) not in patients]
    return np.asarray(keep, dtype=np.int64)


def _name_key(rel: str) -> str:
    return patient_id_of(rel) or _OWN_PATIENT + rel


def write_held_out(run_dir: str | Path, held: HeldOut) -> Path:
    """Write ``held_out.json`` into the run folder, atomically; returns its path."""
    path = Path(run_dir) / HELD_OUT_JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, held.to_json())
    return path


def read_held_out(run_dir: str | Path) -> HeldOut:
    """The hold-out a run recorded. ``ValueError`` naming the file when it is missing, not
    this format, or damaged (fields missing, or its list no longer matches its checksum)."""
    path = Path(run_dir) / HELD_OUT_JSON
    if not path.is_file():
        raise ValueError(f"{path}: no such file; this run recorded no held-out patients (it "
                         "was trained without --hold-out-patients, or is not a run folder)")
    data = read_json_object(path)
    if data is None:
        raise ValueError(f"{path}: damaged (not a readable JSON object); the list of "
                         "held-out images is lost, so this run cannot calibrate an audit")
    if data.get("format") != HELD_OUT_FORMAT:
        raise ValueError(f"{path}: format {data.get('format')!r}, expected "
                         f"{HELD_OUT_FORMAT!r}")
    try:
        held = HeldOut(fraction=float(data["fraction"]), seed=int(data["seed"]),
                       image_dir=str(data["image_dir"]),
                       patient_ids=tuple(str(p) for p in data["patient_ids"]),
                       files=tuple(str(f) for f in data["files"]), method=str(data["method"]),
                       images_total=int(data.get("images_total", 0)),
                       patients_total=int(data.get("patients_total", 0)))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: damaged ({type(error).__name__}: {error})") from error
    if held.files_sha256 != data.get("files_sha256"):
        raise ValueError(f"{path}: damaged (its list of {len(held.files)} files does not "
                         "match the checksum recorded with it)")
    return held
