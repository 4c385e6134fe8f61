"""Frame sets of latent paths (a latent shift, an interpolation) written as one folder.

What a folder holds, all describing the same frames:

- ``frame_000.png`` ...: each frame as a 16-bit grayscale PNG (value = round(65535 * pixel));
- ``strip.png``: the frames side by side, 8-bit (round(255 * pixel)), for a slide or a paper;
- ``animation.gif`` and ``animation.apng``: the frames as an endless animation, 8-bit,
  optionally ping-pong (forwards, then back without repeating the ends). Pillow merges
  identical consecutive frames into one longer frame; ``path.json`` records how many frames
  each animation holds as written;
- ``dicom/frame_000.dcm`` ...: one synthetic DICOM series (one study, one series, one
  instance per frame, Instance Number = frame + 1), every file marked synthetic exactly as
  every other export (:mod:`cxrgan_desktop.imaging.dicom_export`);
- ``frames.csv``: per frame its position (``lambda_deg`` or ``t``), angle from the start,
  that angle's percentile under the prior, and every label's probability;
- ``latents.npy``: the frames' latents, one row per frame (rendering row k reproduces
  frame k);
- ``path.json``: what made them: model and classifier (names, SHA-256), the finding, where
  the start (and end) latents came from, the positions, the method, the truncation psi (as
  ``cxrgan generate``'s manifest records it), the software version and how the frames were
  derived. Written last: a folder with a ``path.json`` is complete.

Frames rendered with truncation (psi < 1) say so in every DICOM instance as well, as every
truncated export does (:class:`~cxrgan_desktop.imaging.synthetic_provenance.SyntheticImageInfo`).

Writes never leave a half set under the final names: the folder is locked
(:mod:`cxrgan_desktop.core.output_lock`), every file is first written (atomically) into a
hidden staging folder inside it, and only when all are whole are they moved to their names,
``path.json`` last. A cancel (or an error) removes the staging folder; a killed run's staging
folder is removed by the next run that takes the lock. A folder that holds an earlier frame
set is refused unless ``overwrite``; then only the earlier set's files go.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import os
import re
import secrets
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_writer,
    sha256_file,
)
from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress, sub_progress
from cxrgan_desktop.core.output_lock import OutputFolderError, output_lock
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.interpolation import LatentPath, interpolation_path
from cxrgan_desktop.engine.latent_shift import DEFAULT_MAX_STEP_DEG, shift_path
from cxrgan_desktop.engine.truncation import record as truncation_record
from cxrgan_desktop.imaging.dicom_export import (
    SyntheticImageInfo,
    SyntheticSeries,
    export_dicom,
    new_synthetic_series,
)
from cxrgan_desktop.imaging.png16 import encode_png16
from cxrgan_desktop.imaging.synthetic_provenance import WARNING_TEXT, ProjectionSource
from cxrgan_desktop.imaging.windowing import unit_window

FORMAT = "cxrgan-desktop latent frames v1"
PATH_JSON = "path.json"
FRAMES_CSV = "frames.csv"
STRIP = "strip.png"
GIF = "animation.gif"
APNG = "animation.apng"
LATENTS = "latents.npy"
DICOM_DIR = "dicom"
DEFAULT_FRAME_MS = 150
_STAGING_PREFIX = ".latent-frames-staging-"
_FRAME_RE = re.compile(r"^frame_\d{3,}\.(png|dcm)$")
_SET_FILES = (PATH_JSON, FRAMES_CSV, STRIP, GIF, APNG, LATENTS)


def frame_name(index: int, count: int, suffix: str = ".png") -> str:
    """``frame_007.png``: zero-padded so that names sort in path order."""
    return f"frame_{index:0{max(3, len(str(count - 1)))}d}{suffix}"


@dataclass(frozen=True)
class LatentSource:
    """Where a path's start (or end) latent came from: image ``index`` of ``cxrgan generate
    --seed seed``, or row ``row`` of a ``.npy`` file; ``note`` for anything a later reader
    must know. ``derived_from``: the latent was projected from a real radiograph
    (``tasks.project.projection_source``): every frame is then labelled derived from it, in
    path.json and in each DICOM instance, as well as synthetic."""

    seed: int | None = None
    index: int | None = None
    latents_file: Path | None = None
    row: int | None = None
    note: str = ""
    derived_from: ProjectionSource | None = None

    def __post_init__(self) -> None:
        seeded = self.seed is not None and self.index is not None
        if seeded == (self.latents_file is not None):
            raise ValueError("a latent source is either a seed and an index, or a latents file")

    def describe(self) -> str:
        if self.latents_file is not None:
            text = f"row {self.row or 0} of {self.latents_file.name}"
        else:
            text = f"latent seed {self.seed}, index {self.index}"
        return f"{text} ({self.note})" if self.note else text

    def to_dict(self) -> dict[str, Any]:
        if self.latents_file is not None:
            data: dict[str, Any] = {"latents_file": self.latents_file.name,
                                    "latents_sha256": sha256_file(self.latents_file),
                                    "row": self.row or 0}
        else:
            data = {"seed": self.seed, "index": self.index,
                    "recipe": "numpy.random.default_rng([seed, index]).standard_normal("
                              "latent_size), float32 (the latent of 'cxrgan generate --seed')"}
        if self.note:
            data["note"] = self.note
        if self.derived_from is not None:
            data["derived_from"] = self.derived_from.to_dict()
        return data


@dataclass
class FrameSetResult:
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    series: SyntheticSeries | None = None

    @property
    def path_json(self) -> Path:
        return self.out_dir / PATH_JSON


def shift_to_folder(model: LoadedGenerator, classifier: Any, finding: str, z0: np.ndarray,
                    lambdas: Sequence[float], out_dir: str | os.PathLike[str], *,
                    source: LatentSource, recompute_gradient: bool = False,
                    max_step_deg: float = DEFAULT_MAX_STEP_DEG, device: str = "cpu",
                    truncation: float = 1.0, ping_pong: bool = False,
                    frame_ms: int = DEFAULT_FRAME_MS, overwrite: bool = False,
                    progress: ProgressFn = no_progress,
                    cancel: threading.Event | None = None) -> FrameSetResult:
    """The latent shift job: :func:`~cxrgan_desktop.engine.latent_shift.shift_path` (at
    truncation psi ``truncation``), then its frame set in ``out_dir`` (see the module).
    ``classifier``: a ``LoadedClassifier``."""
    out = Path(out_dir)
    with output_lock(out, "shift"):
        _refuse_earlier(out, overwrite)  # before minutes of work, not after
        path = shift_path(model, classifier, finding, z0, lambdas,
                          recompute_gradient=recompute_gradient, max_step_deg=max_step_deg,
                          device=device, truncation=truncation,
                          progress=sub_progress(progress, 0.0, 0.6), cancel=cancel)
        return _write_locked(path, out, model, classifier, [source], ping_pong, frame_ms,
                             overwrite, sub_progress(progress, 0.6, 1.0), cancel)


def interpolate_to_folder(model: LoadedGenerator, z_a: np.ndarray, z_b: np.ndarray,
                          frames: int, out_dir: str | os.PathLike[str], *,
                          source: LatentSource, end: LatentSource, classifier: Any = None,
                          device: str = "cpu", truncation: float = 1.0,
                          ping_pong: bool = False, frame_ms: int = DEFAULT_FRAME_MS,
                          overwrite: bool = False, progress: ProgressFn = no_progress,
                          cancel: threading.Event | None = None) -> FrameSetResult:
    """The interpolation job: :func:`~cxrgan_desktop.engine.interpolation.interpolation_path`
    from ``z_a`` to ``z_b`` (at truncation psi ``truncation``), then its frame set in
    ``out_dir`` (see the module)."""
    out = Path(out_dir)
    with output_lock(out, "interpolate"):
        _refuse_earlier(out, overwrite)
        path = interpolation_path(model, z_a, z_b, frames, classifier, device=device,
                                  truncation=truncation,
                                  progress=sub_progress(progress, 0.0, 0.6), cancel=cancel)
        return _write_locked(path, out, model, classifier, [source, end], ping_pong,
                             frame_ms, overwrite, sub_progress(progress, 0.6, 1.0), cancel)


def write_frame_set(path: LatentPath, out_dir: str | os.PathLike[str], *,
                    model: LoadedGenerator, classifier: Any = None,
                    sources: Sequence[LatentSource], ping_pong: bool = False,
                    frame_ms: int = DEFAULT_FRAME_MS, overwrite: bool = False,
                    progress: ProgressFn = no_progress,
                    cancel: threading.Event | None = None) -> FrameSetResult:
    """Write an already computed path's frame set (the window's export, which has the
    frames on screen). ``sources``: the start latent's, and the end's for an interpolation.
    Raises :class:`OutputFolderError` for a folder holding an earlier set (unless
    ``overwrite``), :class:`~cxrgan_desktop.core.jobs.Cancelled` when cancelled (nothing is
    left under the final names)."""
    out = Path(out_dir)
    with output_lock(out, "latent frames"):
        return _write_locked(path, out, model, classifier, list(sources), ping_pong, frame_ms,
                             overwrite, progress, cancel)


def earlier_frame_set(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The files of an earlier frame set in ``out_dir`` (ours by name; nothing else)."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    found = [out / name for name in _SET_FILES if (out / name).is_file()]
    found += sorted(p for p in out.iterdir() if p.is_file() and _FRAME_RE.match(p.name))
    dicom = out / DICOM_DIR
    if dicom.is_dir():
        found += sorted(p for p in dicom.iterdir() if p.is_file() and _FRAME_RE.match(p.name))
    return found


def _refuse_earlier(out: Path, overwrite: bool) -> None:
    earlier = earlier_frame_set(out)
    if earlier and not overwrite:
        raise OutputFolderError(f"{out} holds an earlier frame set ({len(earlier)} files, e.g. "
                                f"{earlier[0].name}); overwrite it (--overwrite) or choose "
                                "another folder")


def _to8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _animation(frames8: list[np.ndarray], image_format: str, frame_ms: int) -> bytes:
    pictures = [Image.fromarray(f) for f in frames8]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format=image_format, save_all=True, append_images=pictures[1:],
                     duration=frame_ms, loop=0)
    return buffer.getvalue()


def _animation_frames(path: Path) -> int:
    with Image.open(path) as picture:
        return int(getattr(picture, "n_frames", 1))


def _number(value: float) -> str:
    """Nine significant digits: a float32 read back from the CSV is the same float32."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{float(value):.9g}"


def _csv_bytes(path: LatentPath, names: list[str]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["frame", "file", path.position_name, "angle_deg", "angle_percentile",
                     *path.labels])
    for frame, name in zip(path.frames, names, strict=True):
        probabilities = [] if frame.probabilities is None else list(frame.probabilities)
        writer.writerow([frame.index, name, _number(frame.position), _number(frame.angle_deg),
                         _number(frame.angle_percentile), *map(_number, probabilities)])
    return text.getvalue().encode("utf-8")


def _clear_staging(out: Path) -> None:
    """Staging folders of killed runs (only called with the folder's lock held)."""
    for entry in out.iterdir():
        if entry.name.startswith(_STAGING_PREFIX) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _describe_path(path: LatentPath, sources: Sequence[LatentSource]) -> str:
    if path.kind == "shift":
        positions = path.positions
        return (f"latent shift along {path.method.get('finding')} (lambda {positions.min():g} "
                f"to {positions.max():g} degrees) from {sources[0].describe()}")
    return f"spherical interpolation from {sources[0].describe()} to {sources[-1].describe()}"


def _write_locked(path: LatentPath, out: Path, model: LoadedGenerator, classifier: Any,
                  sources: list[LatentSource], ping_pong: bool, frame_ms: int,
                  overwrite: bool, progress: ProgressFn, cancel: threading.Event | None
                  ) -> FrameSetResult:
    if not path.frames:
        raise ValueError("the path has no frames")
    if frame_ms < 1:
        raise ValueError(f"frame duration must be at least 1 ms, got {frame_ms}")
    _clear_staging(out)
    _refuse_earlier(out, overwrite)
    count = len(path.frames)
    staging = out / f"{_STAGING_PREFIX}{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        result = _stage(path, out, staging, model, classifier, sources, ping_pong, frame_ms,
                        progress, cancel)
        check_cancel(cancel)
        # commit: the earlier set's record goes first, so no path.json ever describes a mix
        for old in earlier_frame_set(out):
            old.unlink(missing_ok=True)
        (out / DICOM_DIR).mkdir(exist_ok=True)
        for staged in sorted(staging.rglob("*")):
            if staged.is_file() and staged.name != PATH_JSON:
                os.replace(staged, out / staged.relative_to(staging))
        os.replace(staging / PATH_JSON, out / PATH_JSON)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress(1.0, f"{count} frames written")
    return result


def _stage(path: LatentPath, out: Path, staging: Path, model: LoadedGenerator,
           classifier: Any, sources: list[LatentSource], ping_pong: bool, frame_ms: int,
           progress: ProgressFn, cancel: threading.Event | None) -> FrameSetResult:
    count = len(path.frames)
    what = _describe_path(path, sources)
    series = new_synthetic_series(
        model.name, model.sha256, series_description=(
            f"SYNTHETIC latent shift {path.method.get('finding')}" if path.kind == "shift"
            else "SYNTHETIC latent interpolation"))
    result = FrameSetResult(out, series=series)
    # a path from (or to) a projected latent is derived from that radiograph: say so
    derived = next((s.derived_from for s in sources if s.derived_from is not None), None)
    (staging / DICOM_DIR).mkdir()
    png_names, dicom_names = [], []
    for frame in path.frames:
        check_cancel(cancel)
        name = frame_name(frame.index, count)
        atomic_write_bytes(staging / name, encode_png16(frame.image))
        dicom_name = f"{DICOM_DIR}/{frame_name(frame.index, count, '.dcm')}"
        info = SyntheticImageInfo(frame.index, latents_source=f"{LATENTS}: frames of a {what}",
                                  window=unit_window(), derived_from=derived,
                                  truncation=path.truncation)
        export_dicom(staging / dicom_name, frame.image, series, info)
        png_names.append(name)
        dicom_names.append(dicom_name)
        progress(0.8 * (frame.index + 1) / count, f"{frame.index + 1}/{count} frames")
    check_cancel(cancel)
    frames8 = [_to8(f.image) for f in path.frames]
    sequence = frames8 + (frames8[-2:0:-1] if ping_pong else [])
    atomic_write_bytes(staging / STRIP, _png8(np.concatenate(frames8, axis=1)))
    atomic_write_bytes(staging / GIF, _animation(sequence, "GIF", frame_ms))
    check_cancel(cancel)
    atomic_write_bytes(staging / APNG, _animation(sequence, "PNG", frame_ms))
    with atomic_writer(staging / LATENTS) as handle:
        np.save(handle, path.latents, allow_pickle=False)
    atomic_write_bytes(staging / FRAMES_CSV, _csv_bytes(path, png_names))
    progress(0.95, "animations written")
    check_cancel(cancel)
    record = _record(path, model, classifier, sources, what, series, png_names, dicom_names,
                     ping_pong, frame_ms, len(sequence),
                     {GIF: _animation_frames(staging / GIF),
                      APNG: _animation_frames(staging / APNG)})
    atomic_write_json(staging / PATH_JSON, record)
    result.files = [out / n for n in (*png_names, *dicom_names, STRIP, GIF, APNG, LATENTS,
                                      FRAMES_CSV, PATH_JSON)]
    return result


def _psi_text(psi: float) -> str:
    return "" if psi == 1.0 else f" with truncation psi {psi:g}"


def _png8(data: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data).save(buffer, format="PNG")
    return buffer.getvalue()


def _record(path: LatentPath, model: LoadedGenerator, classifier: Any,
            sources: list[LatentSource], what: str, series: SyntheticSeries,
            png_names: list[str], dicom_names: list[str], ping_pong: bool, frame_ms: int,
            sequence: int, written: dict[str, int]) -> dict[str, Any]:
    method = {k: v for k, v in path.method.items() if k != "end"}
    classifier_record = None
    if classifier is not None:
        classifier_record = {"name": getattr(classifier, "name", None),
                             "file": getattr(getattr(classifier, "path", None), "name", None),
                             "sha256": getattr(classifier, "sha256", None),
                             "labels": list(path.labels)}
    frames = []
    for frame, png, dcm in zip(path.frames, png_names, dicom_names, strict=True):
        entry: dict[str, Any] = {"frame": frame.index, "file": png, "dicom": dcm,
                                 path.position_name: frame.position,
                                 "angle_deg": frame.angle_deg,
                                 "angle_percentile": frame.angle_percentile}
        if frame.probabilities is not None:
            entry["probabilities"] = dict(zip(path.labels, map(float, frame.probabilities),
                                              strict=True))
        frames.append(entry)
    record: dict[str, Any] = {
        "format": FORMAT,
        "synthetic": True,
        "warning": WARNING_TEXT,
        "kind": path.kind,
        "software": {"name": "cxrgan-desktop", "version": __version__},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model": {"name": model.name, "file": model.path.name, "sha256": model.sha256,
                  "resolution": model.resolution, "latent_size": model.config.latent_size},
        "classifier": classifier_record,
        "finding": path.method.get("finding"),
        "start": sources[0].to_dict(),
        "end": sources[1].to_dict() if len(sources) > 1 else None,
        "positions": {"name": path.position_name,
                      "values": [float(v) for v in path.positions]},
        "method": method,
        "truncation": truncation_record(path.truncation),
        "angle_percentile": "percentile (0-100) of the frame's angle from the start latent "
                            "among the angles between it and random draws z ~ N(0, I): "
                            "exact, (1 + cos) / 2 ~ Beta((d-1)/2, (d-1)/2)",
        "derived_from": (f"Synthetic frames derived from {what}, rendered by model "
                         f"{model.name} (sha256 {model.sha256}){_psi_text(path.truncation)}; "
                         f"frame k's latent is row k of {LATENTS}. " + " ".join(
                             s.derived_from.describe() for s in sources
                             if s.derived_from is not None)).strip(),
        "frames": frames,
        "files": {"frames_png16": png_names, "strip_png8": STRIP, "gif": GIF, "apng": APNG,
                  "latents": LATENTS, "csv": FRAMES_CSV, "dicom": dicom_names},
        "animation": {"ping_pong": ping_pong, "frame_ms": frame_ms, "sequence": sequence,
                      "frames_written": written,
                      "note": "Pillow merges identical consecutive frames into one longer "
                              "frame"},
        "dicom": {"study_instance_uid": series.study_uid,
                  "series_instance_uid": series.series_uid,
                  "patient_id": series.patient_id, "series": series.to_dict()},
    }
    if "end" in path.method:
        record["method"]["end_latent_in"] = f"row {len(path.frames) - 1} of {LATENTS}"
    return record
