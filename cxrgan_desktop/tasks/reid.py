"""The re-identification training job: an image folder with its ChestX-ray14 label file in,
a ``.safetensors`` embedding with its held-out verification figures out.

Images are read through the training image cache (one read of each file, shared with GAN and
classifier training on the same folder); each image's patient is the label file's
``Patient ID``, the only thing re-identification learns from.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from cxrgan_desktop.core.jobs import ProgressFn, no_progress, sub_progress
from cxrgan_desktop.engine.classifier.data import labelled_images
from cxrgan_desktop.engine.reid.training import (
    ReidTrainConfig,
    ReidTrainingReport,
    train_reid_network,
)
from cxrgan_desktop.engine.training.dataset import DatasetSpec

__all__ = ["ReidTrainConfig", "ReidTrainingReport", "train_reid"]


def train_reid(spec: DatasetSpec, out_path: str | Path, config: ReidTrainConfig, *,
               device: torch.device | str = "cpu", progress: ProgressFn = no_progress,
               cancel: threading.Event | None = None,
               cache_dir: Path | None = None) -> ReidTrainingReport:
    """Cache the images of ``spec``, attach patient ids, train, write ``out_path``.

    Raises ``ValueError`` naming the file and the fix when the folder has no label file, or
    when no patient has two images among those used.
    """
    if spec.labels_csv is None:
        raise ValueError(f"{spec.image_dir}: re-identification training needs the label file "
                         "that names each image's patient; give the ChestX-ray14 Data_Entry "
                         "CSV (--labels), whose 'Patient ID' column it reads")
    data = labelled_images(spec, (), config.input_size, cache_dir=cache_dir,
                           progress=sub_progress(progress, 0.0, 0.1), cancel=cancel)
    _, counts = np.unique(data.patient_ids, return_counts=True)
    if len(counts) == 0 or counts.max() < 2:
        raise ValueError(f"{spec.labels_csv}: each of the {len(data)} images used is the only "
                         f"one of its patient ({len(counts)} patients); re-identification "
                         "learns a patient from follow-up images, so patients need at least "
                         "two images each: use a folder with follow-ups (ChestX-ray14's "
                         "'Follow-up #'), or 'cxrgan phantom --images-per-patient 4')")
    return train_reid_network(config, data, out_path, device=torch.device(device),
                              progress=sub_progress(progress, 0.1, 1.0), cancel=cancel)
