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

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cxrgan_desktop.core.jobs import ProgressFn, no_progress
from cxrgan_desktop.engine.training.dataset import DatasetSpec
from cxrgan_desktop.engine.training.image_cache import ImageCache, build_cache, default_cache_dir
from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv


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

    def batch(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Images ``indices`` as ``[B, 1, R, R]`` float in [0, 1]."""
        return self.cache.batch(self.resolution, indices)

    @property
    def description(self) -> str:
        return self.cache.description

    @property
    def fingerprint(self) -> str:
        return self.cache.fingerprint


class PooledImages:
    """Chosen images of several labelled sets as one training set (real plus synthetic, a
    real subset, ...), with the interface the classifier trainer reads: ``batch``,
    ``targets``, ``patient_ids``, ``label_names``, ``description``, ``fingerprint``.

    Patient ids are renumbered per part, so a synthetic image can never share a "patient"
    with a real one by coincidence of numbering.
    """

    def __init__(self, parts: Sequence[tuple[LabelledImages, np.ndarray]]) -> None:
        if not parts:
            raise ValueError("a pool needs at least one part")
        names = {part.label_names for part, _ in parts}
        if len(names) != 1:
            raise ValueError("the pooled sets have different label names")
        self.parts = [(part, np.asarray(indices, dtype=np.int64)) for part, indices in parts]
        self.label_names = parts[0][0].label_names
        self.resolution = parts[0][0].resolution
        if any(part.resolution != self.resolution for part, _ in self.parts):
            raise ValueError("the pooled sets are cached at different resolutions")
        self.targets = np.concatenate([part.targets[ix] for part, ix in self.parts])
        keys = np.concatenate([np.stack([np.full(len(ix), k), part.patient_ids[ix]], axis=1)
                               for k, (part, ix) in enumerate(self.parts)])
        self.patient_ids = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)
        self._starts = np.cumsum([0] + [len(ix) for _, ix in self.parts])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def batch(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        wanted = np.asarray(indices, dtype=np.int64)
        out: torch.Tensor | None = None
        for k, (part, ix) in enumerate(self.parts):
            inside = (wanted >= self._starts[k]) & (wanted < self._starts[k + 1])
            if not inside.any():
                continue
            images = part.batch(ix[wanted[inside] - self._starts[k]])
            if out is None:
                out = images.new_empty((len(wanted), *images.shape[1:]))
            out[torch.from_numpy(np.flatnonzero(inside))] = images
        assert out is not None, "an empty batch"
        return out

    @property
    def description(self) -> str:
        return "; ".join(f"{len(ix)} of {part.description}" for part, ix in self.parts)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for part, ix in self.parts:
            digest.update(part.fingerprint.encode())
            digest.update(ix.tobytes())
        return digest.hexdigest()


TrainingImages = LabelledImages | PooledImages


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
