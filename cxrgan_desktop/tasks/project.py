"""The projection job: fit a latent to a real radiograph and write what was found.

Shared by ``cxrgan project`` and the window. The folder receives:

- ``latent.npy``: 1 x latent_size float32, at rms 1 (what the generator's pixel norm makes
  of any latent): a latent like any other, so ``cxrgan generate --latents latent.npy``
  renders exactly ``reconstruction.png``, and shift, interpolation and LCO can start from it;
- ``original.png``: the target as the generator saw it (centre crop, Lanczos to the
  generator's resolution, 16-bit, as the training cache prepares images);
- ``reconstruction.png``: the rendered latent, 16-bit;
- ``difference.png``: 0.5 + (reconstruction - original) / 2, 16-bit: mid-grey where they
  agree, brighter where the reconstruction is brighter, signed and exact to 1/65535;
- ``side_by_side.png``: original | reconstruction | difference, one 16-bit image 3R wide;
- ``projection.json``, written last: model, source file (name and SHA-256), settings, PSNR,
  SSIM, the loss curve, every start's final loss, the typicality of the latent, the files'
  SHA-256, and the note that everything made from the latent is synthetic and derived.

The folder is locked while the job runs, every file is written atomically, and a folder
that already holds a projection is refused unless ``overwrite`` is set.
"""

from __future__ import annotations

import datetime as _dt
import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    read_json_object,
    sha256_file,
)
from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.core.output_lock import OutputFolderError, output_lock
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.classifier.files import LoadedClassifier
from cxrgan_desktop.engine.devices import describe_device
from cxrgan_desktop.engine.projection import (
    DEFAULT_LEARNING_RATE,
    DEFAULT_RESTARTS,
    DEFAULT_STEPS,
    Projection,
    project,
)
from cxrgan_desktop.imaging.image_file import display_path
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.imaging.readers import read_image
from cxrgan_desktop.imaging.synthetic_provenance import ProjectionSource

FORMAT = "cxrgan-desktop projection v1"
RECORD_NAME = "projection.json"
LATENT_NAME = "latent.npy"
IMAGE_NAMES = {"original": "original.png", "reconstruction": "reconstruction.png",
               "difference": "difference.png", "side_by_side": "side_by_side.png"}
DERIVED_NOTE = ("latent projected from a real radiograph; every image made from it is "
                "synthetic and derived")


@dataclass(frozen=True)
class ProjectOptions:
    """The settings of one projection (see :func:`cxrgan_desktop.engine.projection.project`)."""

    restarts: int = DEFAULT_RESTARTS
    steps: int = DEFAULT_STEPS
    learning_rate: float = DEFAULT_LEARNING_RATE
    classifier: LoadedClassifier | None = None
    classifier_weight: float = 0.0
    seed: int = 0
    device: str = "cpu"
    overwrite: bool = False


@dataclass
class ProjectResult:
    out_dir: Path
    projection: Projection
    record: dict[str, Any]

    @property
    def latent_path(self) -> Path:
        return self.out_dir / LATENT_NAME

    @property
    def record_path(self) -> Path:
        return self.out_dir / RECORD_NAME


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def difference_image(original: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """0.5 + (reconstruction - original) / 2: signed, mid-grey where the two agree."""
    return np.clip(0.5 + (reconstruction.astype(np.float64) - original) / 2.0, 0.0, 1.0)


def project_image(path: str | Path, model: LoadedGenerator, out_dir: str | Path,
                  options: ProjectOptions | None = None, progress: ProgressFn = no_progress,
                  cancel: threading.Event | None = None) -> ProjectResult:
    """Read ``path`` (PNG, JPEG, TIFF or DICOM), project it, write the folder (see module).

    Raises :class:`~cxrgan_desktop.imaging.image_file.ImageReadError` naming the file when it
    is not a readable image, :class:`OutputFolderError` for a folder holding a projection
    (without ``overwrite``) or being written, and
    :class:`~cxrgan_desktop.core.jobs.Cancelled` when cancelled (nothing is written then).
    """
    options = options or ProjectOptions()
    source = Path(path)
    loaded = read_image(source)  # before the lock: a wrong file costs nothing
    out = Path(out_dir)
    with output_lock(out, "project"):
        if (out / RECORD_NAME).exists() and not options.overwrite:
            raise OutputFolderError(f"{display_path(out)} already holds a projection "
                                    f"({RECORD_NAME}); overwrite it or choose another folder")
        source_sha256 = sha256_file(source)
        classifier = options.classifier
        projection = project(
            model, loaded.pixels, restarts=options.restarts, steps=options.steps,
            lr=options.learning_rate,
            classifier=classifier.classifier if classifier is not None else None,
            classifier_weight=options.classifier_weight, seed=options.seed,
            device=options.device, progress=progress, cancel=cancel)
        check_cancel(cancel)
        files = _write_files(out, projection)
        record = _record(model, source, source_sha256, loaded.file_format,
                         loaded.pixels.shape, options, projection, files)
        atomic_write_json(out / RECORD_NAME, record)
    return ProjectResult(out, projection, record)


def _write_files(out: Path, projection: Projection) -> dict[str, str]:
    """The latent and the images; name -> SHA-256 of each file written."""
    original, reconstruction = projection.target, projection.reconstruction
    difference = difference_image(original, reconstruction)
    atomic_write_bytes(out / LATENT_NAME, _npy_bytes(projection.latent.astype(np.float32)))
    images = {"original": original, "reconstruction": reconstruction,
              "difference": difference,
              "side_by_side": np.concatenate([original, reconstruction, difference], axis=1)}
    for key, image in images.items():
        write_png16(out / IMAGE_NAMES[key], image)
    names = [LATENT_NAME, *IMAGE_NAMES.values()]
    return {name: sha256_file(out / name) for name in names}


def _record(model: LoadedGenerator, source: Path, source_sha256: str, file_format: str,
            shape: tuple[int, ...], options: ProjectOptions, projection: Projection,
            files: dict[str, str]) -> dict[str, Any]:
    classifier = options.classifier
    used = classifier is not None and options.classifier_weight > 0
    return {
        "format": FORMAT,
        "synthetic": True,
        "derived": DERIVED_NOTE,
        "derived_from": ProjectionSource(source_sha256).to_dict(),
        "software": {"name": "cxrgan-desktop", "version": __version__},
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "model": {"name": model.name, "sha256": model.sha256, "resolution": model.resolution,
                  "latent_size": model.config.latent_size},
        "source": {"file_name": display_path(source.name), "sha256": source_sha256,
                   "format": file_format, "height": int(shape[0]), "width": int(shape[1])},
        "settings": {**projection.settings,
                     "device": describe_device(torch.device(options.device))},
        "classifier": ({"name": classifier.name, "sha256": classifier.sha256,
                        "weight": options.classifier_weight} if used and classifier else None),
        "results": {
            "psnr_db": projection.psnr, "ssim": projection.ssim, "ms_ssim": projection.ms_ssim,
            "compared": "reconstruction.png against original.png (16-bit values, data range 1)",
            "ssim_definition": "single-scale SSIM, Wang et al. 2004: 11-px Gaussian window "
                               "sigma 1.5, K1 0.01, K2 0.03, valid windows averaged",
            "best_restart": projection.best_restart,
            "restart_final_losses": projection.restart_losses,
            "loss_curve": projection.loss_curve,
        },
        "typicality": projection.typicality.to_json(),
        "latent": {"file": LATENT_NAME, "shape": list(projection.latent.shape),
                   "scale": "rms 1 (|z| = sqrt(latent_size)), as the generator's pixel norm",
                   "render": f"cxrgan generate --model {model.name} --latents {LATENT_NAME} "
                             "reproduces reconstruction.png"},
        "files": files,
    }


def projection_source(latents_path: str | Path) -> ProjectionSource | None:
    """The radiograph a latents file was projected from, when ``projection.json`` beside it
    records this very file (its SHA-256); None for any other latents file.

    For exports made from a latent: they add it to their provenance
    (:class:`~cxrgan_desktop.imaging.synthetic_provenance.SyntheticImageInfo.derived_from`)
    so that the image is labelled derived as well as synthetic.
    """
    latents = Path(latents_path)
    record = read_json_object(latents.parent / RECORD_NAME)
    if not record or record.get("format") != FORMAT or not latents.is_file():
        return None
    if record.get("files", {}).get(latents.name) != sha256_file(latents):
        return None
    source = record.get("source", {}).get("sha256")
    return ProjectionSource(str(source)) if source else None
