"""Labelled images for classifier training and evaluation, and the patient-wise split.

Images come from the training image cache (one read of each source file, kept at every
power-of-two resolution), so a classifier and a GAN trained on the same folder share one
cache. Labels are the ChestX-ray14 ``Data_Entry`` file's findings, as multi-hot rows over the
classifier's label names.

The split is by patient: ChestX-ray14 holds up to 184 follow-up images of one patient, and
letting a patient's images fall on both sides inflates validation AUROC (the network
recognises the patient, not the finding). Patients are shuffled with the seed and dealt to
validation until it holds the requested fraction of images.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrgan_desktop.engine.training.dataset import DatasetSpec
from cxrgan_desktop.engine.training.image_cache import (
    ImageCache,
    build_cache,
    default_cache_dir,
)
from cxrgan_desktop.imaging.chestxray14 import read_data_entry_csv
from cxrgan_desktop.jobs import ProgressFn, no_progress


@dataclass
class LabelledImages:
    """A cache plus multi-hot targets ``[N, L]`` and a patient id per image."""

    cache: ImageCache
    resolution: int
    label_names: tuple[str, ...]
    targets: np.ndarray  # bool [N, L]
    patient_ids: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return self.cache.count

    def positives(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Images with each label, over ``indices`` (all images when None)."""
        rows = self.targets if indices is None else self.targets[indices]
        return rows.sum(axis=0)


def cache_resolution(input_size: int) -> int:
    """The smallest power of two at or above ``input_size`` (what the cache stores)."""
    resolution = 4
    while resolution < input_size:
        resolution *= 2
    return resolution


def labelled_images(spec: DatasetSpec, label_names: tuple[str, ...], input_size: int, *,
                    cache_dir: Path | None = None, progress: ProgressFn = no_progress,
                    cancel: threading.Event | None = None) -> LabelledImages:
    """Build (or reuse) the cache of ``spec`` and attach targets and patient ids.

    Raises ``ValueError`` when the spec has no label file (a classifier needs labels), or when
    a classifier label is not a finding of the label file.
    """
    if spec.labels_csv is None:
        raise ValueError(f"{spec.image_dir}: classifier training needs a label file; give "
                         "the ChestX-ray14 Data_Entry CSV (--labels)")
    resolution = cache_resolution(input_size)
    folder = cache_dir or default_cache_dir(spec, resolution)
    cache = build_cache(spec, folder, resolution, progress=progress, cancel=cancel)
    assert cache.labels is not None  # a spec with labels_csv gives a labelled cache
    targets = np.array([[name in labels for name in label_names] for labels in cache.labels],
                       dtype=bool).reshape(cache.count, len(label_names))
    patients = {entry.image_index: entry.patient_id
                for entry in read_data_entry_csv(spec.labels_csv)}
    ids = np.array([patients[Path(rel).name] for rel in cache.files], dtype=np.int64)
    return LabelledImages(cache, resolution, tuple(label_names), targets, ids)


def patient_split(patient_ids: np.ndarray, val_fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, val)``: no patient on both sides; deterministic given the seed."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    patients = np.unique(patient_ids)
    if len(patients) < 2:
        raise ValueError("a patient-wise split needs images of at least two patients")
    order = np.random.default_rng(seed).permutation(patients)
    counts = dict(zip(*np.unique(patient_ids, return_counts=True), strict=True))
    wanted = val_fraction * len(patient_ids)
    chosen: list[int] = []
    taken = 0
    for patient in order:
        if taken >= wanted or len(chosen) == len(patients) - 1:
            break
        chosen.append(int(patient))
        taken += counts[patient]
    val_mask = np.isin(patient_ids, chosen)
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask)
