"""The generation job: render latents with a model and write them as 16-bit PNGs or DICOM.

``image_format="dicom"`` writes synthetic Secondary Capture files, one study and series per
call (see :mod:`cxrgan_desktop.imaging.dicom_export`). Shared by ``cxrgan generate`` and the
GUI's Generate panel. Every image is written atomically and the manifest is written whether
the job finishes or is cancelled, so a stopped run leaves whole files that the manifest
describes.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop import __version__
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.devices import describe_device
from cxrgan_desktop.engine.render import Renderer, latents_for_seed
from cxrgan_desktop.fileio import atomic_write_json, atomic_writer, sha256_file
from cxrgan_desktop.imaging.dicom_export import (
    SyntheticImageInfo,
    SyntheticSeries,
    export_dicom,
    new_synthetic_series,
    numbered_name,
)
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.imaging.windowing import Window, unit_window
from cxrgan_desktop.jobs import Cancelled, ProgressFn, check_cancel, no_progress

MANIFEST_NAME = "manifest.json"
LATENTS_NAME = "latents.npy"
IMAGE_FORMATS = ("png16", "dicom")
IMAGE_SUFFIXES = {"png16": ".png", "dicom": ".dcm"}
FORMAT_DESCRIPTIONS = {
    "png16": "png16: 16-bit grayscale PNG, value = round(65535 * pixel), 0 = black",
    "dicom": "dicom: Secondary Capture Image Storage (1.2.840.10008.5.1.4.1.1.7), explicit VR "
             "little endian, 16-bit MONOCHROME2, stored value = round(65535 * pixel), "
             "marked synthetic (Conversion Type SYN)",
}
LATENT_RECIPE = "numpy.random.default_rng([seed, index]).standard_normal(latent_size), float32"


@dataclass
class GenerateResult:
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    cancelled: bool = False
    series: SyntheticSeries | None = None  # DICOM only: the study/series all files share

    @property
    def manifest(self) -> Path:
        return self.out_dir / MANIFEST_NAME


def load_latents_file(path: Path, latent_size: int) -> np.ndarray:
    """An N x latent_size array from .npy, never unpickled; other float types become float32."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from error
    if array.ndim != 2 or array.shape[1] != latent_size or array.shape[0] == 0:
        raise ValueError(f"{path}: latents must be N x {latent_size}, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: latents must be floating point, got {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: latents contain NaN or infinite values")
    return np.ascontiguousarray(array, dtype=np.float32)


def image_name(index: int, count: int, image_format: str = "png16") -> str:
    """Zero-padded so that file names sort in latent order; ``.png`` or ``.dcm``."""
    return numbered_name(index, count, IMAGE_SUFFIXES[image_format])


def generate_to_folder(model: LoadedGenerator, out_dir: str | Path, *,
                       n: int | None = None, seed: int | None = None,
                       latents: np.ndarray | None = None, latents_source: Path | None = None,
                       batch_size: int = 4, device: str = "cpu", precision: str = "float32",
                       image_format: str = "png16", window: Window | None = None,
                       progress: ProgressFn = no_progress,
                       cancel: threading.Event | None = None,
                       on_image: Callable[[int, np.ndarray, Path], None] | None = None
                       ) -> GenerateResult:
    """Render ``latents`` (or ``n`` seeded ones) into ``out_dir`` with a manifest.

    ``image_format`` is ``"png16"`` or ``"dicom"``; ``window`` (stored units 0..65535, default
    the full range) is the Window Center/Width written into DICOM files. ``on_image(index,
    image01, path)`` is called after each file is written (the GUI fills its gallery from it).
    Raises :class:`Cancelled` after writing the manifest of what was finished.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {image_format!r}; choose from {IMAGE_FORMATS}")
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    if window is not None and image_format != "dicom":
        raise ValueError("a stored window applies to the DICOM format only")
    latent_size = model.config.latent_size
    if latents is None:
        if n is None or n < 1 or seed is None:
            raise ValueError("give either latents, or a positive n and a seed")
        latents = latents_for_seed(seed, n, latent_size)
    count = len(latents)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    renderer = Renderer(model, device, precision)
    result = GenerateResult(out)
    if image_format == "dicom":
        result.series = new_synthetic_series(model.name, model.sha256)
    _save_latents(out / LATENTS_NAME, latents)
    progress(0.0, f"0/{count} images")
    try:
        for start in range(0, count, batch_size):
            check_cancel(cancel)
            images = renderer.render(latents[start:start + batch_size]).numpy()
            for offset, image in enumerate(images):
                check_cancel(cancel)
                index = start + offset
                path = out / image_name(index, count, image_format)
                if result.series is not None:
                    info = SyntheticImageInfo(
                        index, seed=seed, window=window or unit_window(),
                        latents_source=latents_source.name if latents_source else None)
                    export_dicom(path, image[0], result.series, info)
                else:
                    write_png16(path, image[0])
                result.files.append(path)
                if on_image is not None:  # the GUI's gallery, as each file lands
                    on_image(index, image[0], path)
            done = len(result.files)
            progress(done / count, f"{done}/{count} images")
    except Cancelled:
        result.cancelled = True
        raise
    finally:
        atomic_write_json(result.manifest, _manifest(
            model, renderer, result, seed, latents_source, batch_size, precision, count,
            image_format, window))
    return result


def _save_latents(path: Path, latents: np.ndarray) -> None:
    with atomic_writer(path) as handle:
        np.save(handle, latents, allow_pickle=False)


def _manifest(model: LoadedGenerator, renderer: Renderer, result: GenerateResult,
              seed: int | None, latents_source: Path | None, batch_size: int, precision: str,
              requested: int, image_format: str = "png16",
              window: Window | None = None) -> dict[str, Any]:
    latents_info: dict[str, Any] = {"file": LATENTS_NAME}
    if latents_source is not None:
        latents_info.update(source=latents_source.name, source_sha256=sha256_file(latents_source))
    else:
        latents_info.update(seed=seed, recipe=LATENT_RECIPE)
    manifest: dict[str, Any] = {
        "software": {"name": "cxrgan-desktop", "version": __version__},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": {"name": model.name, "file": model.path.name, "sha256": model.sha256,
                  "format": model.source_format, "resolution": model.resolution,
                  "latent_size": model.config.latent_size},
        "seed": seed,
        "latents": latents_info,
        "device": describe_device(renderer.device),
        "precision": precision,
        "batch_size": batch_size,
        "format": FORMAT_DESCRIPTIONS[image_format],
        "requested": requested,
        "complete": len(result.files) == requested and not result.cancelled,
        "images": [{"index": i, "file": p.name} for i, p in enumerate(result.files)],
    }
    if result.series is not None:
        shown = window or unit_window()
        manifest["dicom"] = {"study_instance_uid": result.series.study_uid,
                             "series_instance_uid": result.series.series_uid,
                             "patient_id": result.series.patient_id,
                             "window": {"center": shown.center, "width": shown.width}}
    return manifest
