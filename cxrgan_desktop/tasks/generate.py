"""The generation job: render latents with a model and write them as 16-bit PNGs or DICOM.

``image_format="dicom"`` writes synthetic Secondary Capture files, one study and series per
call (see :mod:`cxrgan_desktop.imaging.dicom_export`). Shared by ``cxrgan generate`` and the
GUI's Generate panel.

The manifest describes exactly the files beside it, however the run ends:

- The folder is locked while the job writes it (:mod:`cxrgan_desktop.core.output_lock`).
- A folder that holds an earlier run is refused unless the caller says ``overwrite`` (the
  earlier run's files go: those its manifest lists and those named like ours, never
  anything else) or ``resume`` (only when the recipe - model, latents, count, format,
  window, precision, truncation - is the same; the images its manifest lists are kept).
  A manifest written before truncation existed names none: its images are psi = 1's, and
  it resumes as such.
- Before the first image is written or removed, the manifest is rewritten for the new
  recipe with ``"complete": false``; after each batch it lists the images written so far,
  and only at the end does it say ``"complete": true``. Every file is written atomically, so
  a killed run leaves whole files and a manifest that lists only images of its recipe; the
  same command with ``resume`` finishes it, and removes images the manifest does not list.

With a memorisation audit (``exclude``), an image whose pixels the audit flagged is not
written (and, when resuming, one already written is removed); the manifest lists the audit
(:meth:`~cxrgan_desktop.tasks.audit_file.FlaggedImages.record`) and the indices it left out,
which stay left out when the run is resumed, with or without the audit. No replacements are
rendered: the folder holds fewer images than asked, and the manifest says so.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import atomic_write_json, atomic_writer, sha256_file
from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.core.output_lock import OutputFolderError, output_lock
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.devices import describe_device
from cxrgan_desktop.engine.render import Renderer, latents_for_seed
from cxrgan_desktop.engine.truncation import check_psi, psi_of
from cxrgan_desktop.engine.truncation import record as truncation_record
from cxrgan_desktop.imaging.dicom_export import (
    SyntheticImageInfo,
    SyntheticSeries,
    export_dicom,
    new_synthetic_series,
    numbered_name,
)
from cxrgan_desktop.imaging.pixel_hash import pixel_sha256
from cxrgan_desktop.imaging.png16 import read_png16, write_png16
from cxrgan_desktop.imaging.windowing import Window, unit_window
from cxrgan_desktop.tasks.audit_file import FlaggedImages
from cxrgan_desktop.tasks.project import projection_source

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
IMAGE_RE = re.compile(r"^img_\d{5,}\.(png|dcm)$")  # numbered_name's files, both formats
LATENT_RECIPE = "numpy.random.default_rng([seed, index]).standard_normal(latent_size), float32"
NO_REPLACEMENTS = ("none: an excluded image is not replaced by another sample (a replacement "
                   "would not have been audited), so the folder holds fewer images than asked")


@dataclass
class GenerateResult:
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    cancelled: bool = False
    series: SyntheticSeries | None = None  # DICOM only: the study/series all files share
    excluded: list[int] = field(default_factory=list)  # indices an audit left out, any run
    audits: list[dict[str, Any]] = field(default_factory=list)  # the audits used, with theirs

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
                       overwrite: bool = False, resume: bool = False,
                       progress: ProgressFn = no_progress,
                       cancel: threading.Event | None = None,
                       on_image: Callable[[int, np.ndarray, Path], None] | None = None,
                       exclude: FlaggedImages | None = None,
                       truncation: float = 1.0) -> GenerateResult:
    """Render ``latents`` (or ``n`` seeded ones) into ``out_dir`` with a manifest.

    ``image_format`` is ``"png16"`` or ``"dicom"``; ``window`` (stored units 0..65535, default
    the full range) is the Window Center/Width written into DICOM files. ``on_image(index,
    image01, path)`` is called after each file is written (the GUI fills its gallery from it).
    A folder holding an earlier run raises :class:`OutputFolderError` unless ``overwrite``
    (replace it) or ``resume`` (continue it; same recipe only) is given. Raises
    :class:`~cxrgan_desktop.core.jobs.Cancelled` after writing the manifest of what was finished.
    ``exclude``: an image whose pixels this audit flagged is not written (see the module).
    ``truncation``: psi of :mod:`cxrgan_desktop.engine.truncation` (1: none), recorded in
    the manifest whatever its value.
    """
    truncation = check_psi(truncation)
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {image_format!r}; choose from {IMAGE_FORMATS}")
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    if window is not None and image_format != "dicom":
        raise ValueError("a stored window applies to the DICOM format only")
    if overwrite and resume:
        raise ValueError("overwrite and resume exclude each other")
    latent_size = model.config.latent_size
    if latents is None:
        if n is None or n < 1 or seed is None:
            raise ValueError("give either latents, or a positive n and a seed")
        latents = latents_for_seed(seed, n, latent_size)
    count = len(latents)
    out = Path(out_dir)
    recipe = _recipe(model, seed, latents, image_format, window, precision, truncation)
    with output_lock(out, "generate"):
        return _generate_locked(model, out, latents, recipe, seed, latents_source, batch_size,
                                device, precision, image_format, window, overwrite, resume,
                                progress, cancel, on_image, count, exclude, truncation)


def existing_run(out_dir: str | Path) -> str | None:
    """A line describing the earlier generate run in ``out_dir``, or None if it holds none.

    The GUI asks this before it starts, to offer overwriting instead of failing.
    """
    out = Path(out_dir)
    if not out.is_dir():
        return None
    manifest, ours = _earlier_run(out)
    if manifest is None and not ours:
        return None
    return _describe_earlier(out, manifest, ours)


def _generate_locked(model: LoadedGenerator, out: Path, latents: np.ndarray,
                     recipe: dict[str, Any], seed: int | None, latents_source: Path | None,
                     batch_size: int, device: str, precision: str, image_format: str,
                     window: Window | None, overwrite: bool, resume: bool,
                     progress: ProgressFn, cancel: threading.Event | None,
                     on_image: Callable[[int, np.ndarray, Path], None] | None,
                     count: int, exclude: FlaggedImages | None = None,
                     truncation: float = 1.0) -> GenerateResult:
    """The job, with the folder's lock held (see the module's docstring for the order)."""
    manifest, ours = _earlier_run(out)
    kept: dict[int, Path] = {}
    series: SyntheticSeries | None = None
    exclusions = _Exclusions(exclude, count, image_format)
    if manifest is not None or ours:
        if resume:
            kept, series = _resumable(out, manifest, ours, recipe, count, image_format)
            exclusions.carry_over(manifest or {})
            kept = exclusions.screen(kept, cancel)
        elif not overwrite:
            raise OutputFolderError(
                f"{_describe_earlier(out, manifest, ours)}; overwrite it (--overwrite), "
                "continue it with the same settings (--resume), or choose another folder")
    renderer = Renderer(model, device, precision, truncation)
    result = GenerateResult(out)
    if image_format == "dicom":
        result.series = series or new_synthetic_series(model.name, model.sha256)
    result.files = [kept[i] for i in sorted(kept)]
    result.excluded, result.audits = exclusions.indices, exclusions.audits

    listed: set[Path] = set()  # the images the manifest on disk lists
    latents_info = _latents_info(seed, latents_source)  # hashed once, not on every write
    derived = None if latents_source is None else projection_source(latents_source)
    if derived is not None:  # a projected latent: every image is derived from a radiograph
        latents_info["derived_from"] = derived.to_dict()

    def write_manifest() -> None:
        atomic_write_json(result.manifest, _manifest(
            model, renderer, result, seed, latents_info, batch_size, precision, count,
            image_format, window, recipe))
        listed.clear()
        listed.update(result.files)

    # The manifest names the new recipe, incomplete, before any earlier file is touched.
    write_manifest()
    keep = {p.name for p in result.files} | {MANIFEST_NAME}
    for path in ours:  # an earlier run's images, or strays a killed run wrote unlisted
        if path.name not in keep:
            path.unlink(missing_ok=True)
    _save_latents(out / LATENTS_NAME, latents)
    done = set(kept) | set(exclusions.indices)
    progress(len(done) / count, f"{len(done)}/{count} images")
    try:
        for start in range(0, count, batch_size):
            check_cancel(cancel)
            indices = [i for i in range(start, min(start + batch_size, count)) if i not in done]
            if not indices:
                continue
            images = renderer.render(latents[indices], indices=indices, seed=seed).numpy()
            for index, image in zip(indices, images, strict=True):
                check_cancel(cancel)
                path = out / image_name(index, count, image_format)
                if exclusions.leaves_out(index, image[0]):
                    done.add(index)
                    continue
                if result.series is not None:
                    info = SyntheticImageInfo(
                        index, seed=seed, window=window or unit_window(),
                        latents_source=latents_source.name if latents_source else None,
                        derived_from=derived)
                    export_dicom(path, image[0], result.series, info)
                else:
                    write_png16(path, image[0])
                result.files.append(path)
                done.add(index)
                if on_image is not None:  # the GUI's gallery, as each file lands
                    on_image(index, image[0], path)
            result.files.sort()
            write_manifest()
            progress(len(done) / count, f"{len(done)}/{count} images")
    except BaseException:  # cancel, Ctrl-C, a full disk: the manifest lists what is whole
        result.cancelled = True
        try:
            write_manifest()
        except OSError:  # a full disk: keep the last manifest, and only the files it lists
            for path in set(result.files) - listed:
                with contextlib.suppress(OSError):
                    path.unlink()
            result.files = sorted(listed)
        raise
    write_manifest()
    return result


def stored_image(path: Path) -> np.ndarray:
    """A 16-bit PNG or synthetic DICOM this program wrote, as the [0, 1] image it was made
    from (stored value / 65535, no windowing), so that its pixel hash is the image's."""
    if path.suffix.lower() == ".dcm":
        import pydicom

        try:
            return pydicom.dcmread(path).pixel_array.astype(np.float64) / 65535.0
        except OSError:
            raise
        except Exception as error:  # a decoder can fail in any way on damaged bytes
            raise ValueError(f"{path}: no readable pixel data ({error})") from error
    return read_png16(path)


class _Exclusions:
    """The images audits left out of this folder: this run's audit and earlier runs'."""

    def __init__(self, flagged: FlaggedImages | None, count: int, image_format: str) -> None:
        self.flagged, self.count, self.image_format = flagged, count, image_format
        self.indices: list[int] = []  # every index left out, by any audit (shared list)
        self.audits: list[dict[str, Any]] = []  # records, this run's last (shared list)
        self.mine: dict[str, Any] | None = None
        if flagged is not None:
            self.mine = {**flagged.record([]), "excluded_indices": []}
            self.audits.append(self.mine)

    def carry_over(self, manifest: dict[str, Any]) -> None:
        """Keep what earlier runs of the folder left out: it stays out on a resume."""
        earlier = manifest.get("exclude_flagged")
        if not isinstance(earlier, dict):
            return
        for audit in earlier.get("audits", []):
            if not isinstance(audit, dict):
                continue
            indices = [i for i in audit.get("excluded_indices", [])
                       if isinstance(i, int) and 0 <= i < self.count]
            if self.mine is not None and audit.get("audit_sha256") == self.mine["audit_sha256"]:
                self._note(self.mine, indices)
            else:
                self.audits.insert(len(self.audits) - (self.mine is not None), audit)
                self.indices.extend(i for i in indices if i not in self.indices)

    def screen(self, kept: dict[int, Path], cancel: threading.Event | None
               ) -> dict[int, Path]:
        """The kept images of an earlier run, less those left out (before or now)."""
        kept = {i: p for i, p in kept.items() if i not in self.indices}
        if self.flagged is None:
            return kept
        out = {}
        for index, path in sorted(kept.items()):
            check_cancel(cancel)
            try:
                pixels = stored_image(path)
            except (OSError, ValueError):  # unreadable: not kept, so rendered again, checked
                continue
            if not self.leaves_out(index, pixels):
                out[index] = path
        return out

    def leaves_out(self, index: int, image: np.ndarray) -> bool:
        """True (and noted) when this run's audit flagged the image's pixels."""
        if self.flagged is None or self.mine is None:
            return False
        if not self.flagged.is_flagged(pixel_hash=pixel_sha256(image)):
            return False
        self._note(self.mine, [index])
        return True

    def _note(self, audit: dict[str, Any], indices: list[int]) -> None:
        for index in indices:
            if index not in audit["excluded_indices"]:
                audit["excluded_indices"].append(index)
                audit["excluded_indices"].sort()
            if index not in self.indices:
                self.indices.append(index)
        audit["excluded_files"] = [image_name(i, self.count, self.image_format)
                                   for i in audit["excluded_indices"]]
        audit["excluded"] = len(audit["excluded_indices"])


def _earlier_run(out: Path) -> tuple[dict[str, Any] | None, list[Path]]:
    """The earlier manifest (``{}`` if unreadable, None if absent) and our files beside it."""
    manifest: dict[str, Any] | None = None
    path = out / MANIFEST_NAME
    if path.exists():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = {}
        if not isinstance(manifest, dict):
            manifest = {}
    listed = set()
    if manifest:
        listed = {e.get("file") for e in manifest.get("images", []) if isinstance(e, dict)}
    ours = sorted(p for p in out.iterdir()
                  if p.is_file() and (IMAGE_RE.match(p.name) or p.name in listed
                                      or p.name == LATENTS_NAME))
    return manifest, ours


def _describe_earlier(out: Path, manifest: dict[str, Any] | None, ours: list[Path]) -> str:
    images = sum(1 for p in ours if IMAGE_RE.match(p.name))
    if manifest is None:
        return f"{out} holds {images} generated image(s) without a {MANIFEST_NAME}"
    if not manifest:
        return f"{out} holds an earlier run with an unreadable {MANIFEST_NAME}"
    state = "complete" if manifest.get("complete") else "unfinished"
    source = manifest.get("latents", {}).get("source") if isinstance(
        manifest.get("latents"), dict) else None
    what = f"latents {source}" if source else f"seed {manifest.get('seed')}"
    return (f"{out} holds an earlier run ({what}, {len(manifest.get('images', []))} of "
            f"{manifest.get('requested')} images, {state})")


def _resumable(out: Path, manifest: dict[str, Any] | None, ours: list[Path],
               recipe: dict[str, Any], count: int, image_format: str
               ) -> tuple[dict[int, Path], SyntheticSeries | None]:
    """The images of the earlier run to keep, and its DICOM series; raises unless the
    earlier run had the same recipe."""
    if not manifest:
        raise OutputFolderError(
            f"{_describe_earlier(out, manifest, ours)}: it cannot be resumed; overwrite it "
            "(--overwrite) or choose another folder")
    theirs = manifest.get("recipe")
    if not isinstance(theirs, dict):
        raise OutputFolderError(f"{_describe_earlier(out, manifest, ours)}, written by a "
                                "version that did not record its recipe: it cannot be "
                                "resumed; overwrite it (--overwrite) or choose another folder")
    # a recipe from before truncation existed rendered with none: psi = 1
    with contextlib.suppress(ValueError):  # an unusable psi: compared as it is, and named
        theirs = {**theirs, "truncation": psi_of(theirs.get("truncation"))}
    if theirs != recipe:
        changed = sorted(k for k in set(theirs) | set(recipe) if theirs.get(k) != recipe.get(k))
        raise OutputFolderError(f"{_describe_earlier(out, manifest, ours)} made with other "
                                f"settings (they differ in: {', '.join(changed)}); repeat "
                                "its command to resume it, overwrite it (--overwrite), or "
                                "choose another folder")
    kept: dict[int, Path] = {}
    for entry in manifest.get("images", []):
        try:
            index, name = int(entry["index"]), str(entry["file"])
        except (KeyError, TypeError, ValueError):
            continue
        path = out / name
        if 0 <= index < count and name == image_name(index, count, image_format) \
                and path.is_file():
            kept[index] = path
    series = None
    dicom = manifest.get("dicom")
    if image_format == "dicom" and isinstance(dicom, dict) and "series" in dicom:
        try:
            series = SyntheticSeries.from_dict(dicom["series"])
        except (KeyError, TypeError, ValueError):
            series = None
        if series is None:  # files of another series must not join this one
            kept = {}
    return kept, series


def _recipe(model: LoadedGenerator, seed: int | None, latents: np.ndarray, image_format: str,
            window: Window | None, precision: str, truncation: float = 1.0) -> dict[str, Any]:
    """What decides the images: a resume must ask for the same (device and batch size only
    move values by rounding, so they are recorded in the manifest but not compared)."""
    shown = None
    if image_format == "dicom":
        w = window or unit_window()
        shown = [w.center, w.width]
    return {"model_sha256": model.sha256, "seed": seed,
            "latents_sha256": hashlib.sha256(np.ascontiguousarray(
                latents, dtype=np.float32).tobytes()).hexdigest(),
            "n": len(latents), "format": image_format, "window": shown,
            "precision": precision, "truncation": truncation}


def _save_latents(path: Path, latents: np.ndarray) -> None:
    with atomic_writer(path) as handle:
        np.save(handle, latents, allow_pickle=False)


def _latents_info(seed: int | None, latents_source: Path | None) -> dict[str, Any]:
    """The manifest's account of the latents: the given file and its hash, or the recipe."""
    latents_info: dict[str, Any] = {"file": LATENTS_NAME}
    if latents_source is not None:
        latents_info.update(source=latents_source.name, source_sha256=sha256_file(latents_source))
    else:
        latents_info.update(seed=seed, recipe=LATENT_RECIPE)
    return latents_info


def _manifest(model: LoadedGenerator, renderer: Renderer, result: GenerateResult,
              seed: int | None, latents_info: dict[str, Any], batch_size: int, precision: str,
              requested: int, image_format: str = "png16",
              window: Window | None = None,
              recipe: dict[str, Any] | None = None) -> dict[str, Any]:
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
        "truncation": truncation_record(renderer.truncation),
        "batch_size": batch_size,
        "format": FORMAT_DESCRIPTIONS[image_format],
        "requested": requested,
        "complete": (len(result.files) + len(result.excluded) == requested
                     and not result.cancelled),
        "recipe": recipe,
        "images": [{"index": _index_of(p), "file": p.name} for p in result.files],
    }
    if result.audits:
        manifest["exclude_flagged"] = {
            "audits": result.audits, "excluded": len(result.excluded),
            "excluded_indices": sorted(result.excluded), "replacements": NO_REPLACEMENTS}
    if result.series is not None:
        shown = window or unit_window()
        manifest["dicom"] = {"study_instance_uid": result.series.study_uid,
                             "series_instance_uid": result.series.series_uid,
                             "patient_id": result.series.patient_id,
                             "window": {"center": shown.center, "width": shown.width},
                             "series": result.series.to_dict()}
    return manifest


def _index_of(path: Path) -> int:
    return int(path.stem.split("_", 1)[1])
