"""The training-image cache: every image read once, stored square at every resolution.

Progressive training asks for the same images at 4, 8, ..., 1024 px for days; decoding a
3000 px PNG or DICOM per sample would starve the GPU. :func:`build_cache` reads each source
image once (:func:`~cxrgan_desktop.imaging.readers.read_image`), makes it square, resizes it
to ``max_resolution`` with Pillow's Lanczos filter on float32 data (antialiased; the filter
PGGAN's own ``dataset_tool`` used) and derives each lower power of two by exact 2x2 means,
as PGGAN's dataset pyramid does. Training reads the result through memory maps.

Square: ``"crop"`` (the default) keeps the centre square of the shorter side. Chest
radiographs are framed with the thorax centred, so a centre crop usually loses only margins
(neck, upper abdomen, air beside the shoulders), and the generator never learns borders that
do not exist in real images. It is not free: on strongly non-square images it can cut the
lung apices or the costophrenic angles, so the build counts the images that lose more than
10 % of their long side and logs it. ``"pad"`` keeps everything and adds black (0) bars on
the short side. ChestX-ray14's images are already square, where the two agree.

Layout of a cache folder::

    res_0004.npy ... res_1024.npy   [slots, R, R] uint16 (round(65535 x)) or uint8 (255 x)
    cache.json                      written last, atomically: the cache is complete
    skipped.csv                     every file not in the cache and why (listing or read)
    build.json, progress.json       only while building: settings, listing, images completed

Resumable: ``progress.json`` (images completed, slots written, read failures) is written
atomically every :data:`CHECKPOINT_EVERY` images and when the build stops for any reason,
after the array files were flushed; a second call with the same settings continues there.
Files that listed fine but cannot be read are left out (not given a slot) and reported, so
the arrays stay compact. A changed source (fingerprint) or changed settings rebuild from
scratch. Array writes go through ordinary file writes, not a writable memory map, so a full
disk is an ``OSError``, not a crash.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import io
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import cxrgan_desktop
from cxrgan_desktop.core import paths
from cxrgan_desktop.core.fileio import atomic_write_json, atomic_write_text, read_json_object
from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.core.output_lock import FolderBusy, output_lock
from cxrgan_desktop.engine.training.dataset import (
    DatasetListing,
    DatasetSpec,
    list_dataset,
    summarise_reasons,
)
from cxrgan_desktop.engine.training.preprocess import (
    RESIZE_METHOD,
    SQUARE_MODES,
    preprocess,
    quantise,
    resolutions_up_to,
    storage_dtype,
)
from cxrgan_desktop.imaging.readers import ImageReadError, display_path, read_image

log = logging.getLogger(__name__)

CACHE_FORMAT = "cxrgan-image-cache/1"
"""Bump when the preprocessing changes: it is part of the cache key, so old caches rebuild.
(The package version is recorded but not keyed: a release that leaves preprocessing alone
should not throw away a day of preprocessing.)"""
CHECKPOINT_EVERY = 64
CACHE_JSON, BUILD_JSON, PROGRESS_JSON = "cache.json", "build.json", "progress.json"
SKIPPED_CSV = "skipped.csv"
_LOCK_POLL_S = 0.25
_HEAVY_CROP = 0.10  # fraction of the long side a crop may remove before it is counted


def array_name(resolution: int) -> str:
    return f"res_{resolution:04d}.npy"


class ImageCache:
    """A finished cache, opened read-only. ``array(R)`` is a memory map [count, R, R]."""

    def __init__(self, cache_dir: Path, meta: dict[str, Any]) -> None:
        self.cache_dir = Path(cache_dir)
        self.meta = meta
        self.resolutions: tuple[int, ...] = tuple(int(r) for r in meta["resolutions"])
        self.count = int(meta["count"])
        self.bit_depth = int(meta["bit_depth"])
        self.square = str(meta["square"])
        self.fingerprint = str(meta["fingerprint"])
        self.spec = DatasetSpec.from_json(meta["spec"])
        self.files: tuple[str, ...] = tuple(meta["files"])
        labels = meta.get("labels")
        self.labels: tuple[frozenset[str], ...] | None = (
            None if labels is None else tuple(frozenset(item) for item in labels))
        self.failed: tuple[tuple[str, str], ...] = tuple(
            (str(a), str(b)) for a, b in meta.get("failed", ()))
        self._arrays: dict[int, np.ndarray] = {}

    @property
    def max_resolution(self) -> int:
        return self.resolutions[-1]

    @property
    def description(self) -> str:
        """One line for run manifests and model provenance."""
        return (f"{self.count} images from {self.spec.image_dir}, {self.square} to square, "
                f"{self.max_resolution} px, {self.bit_depth}-bit cache")

    @classmethod
    def open(cls, cache_dir: str | os.PathLike[str]) -> ImageCache:
        """Open a complete cache; ``ValueError`` says why one is incomplete or invalid."""
        folder = Path(cache_dir)
        meta_path = folder / CACHE_JSON
        if not meta_path.exists():
            progress = read_json_object(folder / PROGRESS_JSON)
            build = read_json_object(folder / BUILD_JSON)
            if progress is not None and build is not None:
                raise ValueError(f"{folder}: incomplete image cache ({progress.get('completed')}"
                                 f" of {len(build.get('files', []))} images done); run "
                                 "build_cache again to continue it")
            raise ValueError(f"{folder}: not an image cache (no {CACHE_JSON})")
        meta = read_json_object(meta_path)
        if meta is None:
            raise ValueError(f"{meta_path}: unreadable cache description")
        if meta.get("format") != CACHE_FORMAT:
            raise ValueError(f"{meta_path}: cache format {meta.get('format')!r}, this version "
                             f"reads {CACHE_FORMAT!r}; rebuild the cache")
        try:
            cache = cls(folder, meta)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{meta_path}: invalid cache description ({exc})") from exc
        if len(cache.files) != cache.count or (
                cache.labels is not None and len(cache.labels) != cache.count):
            raise ValueError(f"{meta_path}: file or label list does not match count "
                             f"{cache.count}")
        for r in cache.resolutions:
            cache.array(r)  # checks existence, dtype and shape
        return cache

    def array(self, resolution: int) -> np.ndarray:
        """Read-only memory map [count, R, R], uint8 or uint16 (``bit_depth``)."""
        if resolution not in self.resolutions:
            raise ValueError(f"no {resolution} px images in this cache; it holds "
                             f"{', '.join(map(str, self.resolutions))}")
        if resolution not in self._arrays:
            path = self.cache_dir / array_name(resolution)
            try:
                full = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise ValueError(f"{path}: cannot open cache array ({exc})") from exc
            expected = storage_dtype(self.bit_depth)
            if (full.dtype != expected or full.ndim != 3 or full.shape[1:] != (resolution,) * 2
                    or full.shape[0] < self.count):
                raise ValueError(f"{path}: holds {full.dtype} {full.shape}, expected {expected}"
                                 f" [>= {self.count}, {resolution}, {resolution}]")
            self._arrays[resolution] = full[:self.count]
        return self._arrays[resolution]

    def batch(self, resolution: int, indices: Sequence[int]) -> torch.Tensor:
        """Images ``indices`` as [B, 1, R, R] float32 in [0, 1] (the trainer's batch source)."""
        rows = self.array(resolution)[np.asarray(indices, dtype=np.int64)]
        scale = float(np.iinfo(rows.dtype).max)
        return torch.from_numpy(rows.astype(np.float32) / scale).unsqueeze(1)

    def __getstate__(self) -> dict[str, Any]:
        # pickled into DataLoader workers: send the description, not copies of the arrays
        state = self.__dict__.copy()
        state["_arrays"] = {}
        return state


class CachedImages(torch.utils.data.Dataset):
    """One resolution of a cache as a torch dataset of [1, R, R] float32 in [0, 1]."""

    def __init__(self, cache: ImageCache, resolution: int) -> None:
        cache.array(resolution)  # fail early on a resolution the cache lacks
        self.cache = cache
        self.resolution = int(resolution)
        self.scale = float((1 << cache.bit_depth) - 1)

    def __len__(self) -> int:
        return self.cache.count

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -self.cache.count <= i < self.cache.count:
            raise IndexError(f"image {i} out of range for {self.cache.count} images")
        row = np.asarray(self.cache.array(self.resolution)[i], dtype=np.float32) / self.scale
        return torch.from_numpy(row).unsqueeze(0)


# -- building ---------------------------------------------------------------------------------

def _settings(spec: DatasetSpec, max_resolution: int, bit_depth: int, square: str
              ) -> dict[str, Any]:
    """Everything but the source fingerprint that decides the cache's content."""
    return {"format": CACHE_FORMAT, "spec": spec.resolved().to_json(),
            "max_resolution": int(max_resolution), "bit_depth": int(bit_depth),
            "square": square, "method": RESIZE_METHOD}


def default_cache_dir(spec: DatasetSpec, max_resolution: int, bit_depth: int = 16,
                      square: str = "crop") -> Path:
    """``<user cache>/datasets/<16 hex>``, keyed by spec and settings (not by the source's
    fingerprint: a changed source rebuilds in the same folder instead of leaving old ones)."""
    key = json.dumps(_settings(spec, max_resolution, bit_depth, square), sort_keys=True)
    return paths.cache_dir() / "datasets" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _normalised(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _why_different(old: dict[str, Any] | None, settings: dict[str, Any], fingerprint: str
                   ) -> str:
    if old is None:
        return "no earlier build"
    changed = [key for key in settings if old.get("settings", {}).get(key) != settings[key]]
    if changed:
        return f"settings changed ({', '.join(changed)})"
    if old.get("fingerprint") != fingerprint:
        return "the source images or labels changed"
    return "the earlier build is damaged"


def _clear(folder: Path) -> None:
    """Remove this module's files only: the folder is the caller's and may hold others."""
    for path in [folder / CACHE_JSON, folder / PROGRESS_JSON, folder / BUILD_JSON,
                 folder / SKIPPED_CSV, *folder.glob("res_*.npy")]:
        path.unlink(missing_ok=True)


class _Build:
    """The state of one build pass: open array files, counters, checkpoints."""

    def __init__(self, folder: Path, listing: DatasetListing, resolutions: tuple[int, ...],
                 bit_depth: int, progress_state: dict[str, Any]) -> None:
        self.folder = folder
        self.resolutions = resolutions
        self.bit_depth = bit_depth
        self.completed = int(progress_state["completed"])
        self.written = int(progress_state["written"])
        self.failed: list[list[str]] = [list(f) for f in progress_state["failed"]]
        self.heavy_crops = int(progress_state.get("heavy_crops", 0))
        self.upscaled = int(progress_state.get("upscaled", 0))
        self.handles: dict[int, Any] = {}
        self.offsets: dict[int, int] = {}
        slots = len(listing.files)
        try:
            for r in resolutions:
                path = folder / array_name(r)
                array = np.load(path, mmap_mode="r")
                if array.shape != (slots, r, r) or array.dtype != storage_dtype(bit_depth):
                    raise ValueError(f"{path}: unexpected {array.dtype} {array.shape}")
                self.offsets[r] = int(array.offset)
                del array
                self.handles[r] = open(path, "r+b")  # noqa: SIM115 (closed in close())
        except BaseException:
            self.close()
            raise

    def write(self, levels: list[np.ndarray]) -> None:
        for level in levels:
            r = level.shape[0]
            data = quantise(level, self.bit_depth)
            handle = self.handles[r]
            handle.seek(self.offsets[r] + self.written * data.nbytes)
            handle.write(data.tobytes())
        self.written += 1

    def checkpoint(self) -> None:
        """Make the arrays durable, then record how far they go (in that order)."""
        for handle in self.handles.values():
            handle.flush()
            os.fsync(handle.fileno())
        atomic_write_json(self.folder / PROGRESS_JSON, {
            "completed": self.completed, "written": self.written, "failed": self.failed,
            "heavy_crops": self.heavy_crops, "upscaled": self.upscaled})

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()


def _start(folder: Path, listing: DatasetListing, settings: dict[str, Any], fingerprint: str,
           resolutions: tuple[int, ...], bit_depth: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    _clear(folder)
    for r in resolutions:
        array = np.lib.format.open_memmap(folder / array_name(r), mode="w+",
                                          dtype=storage_dtype(bit_depth),
                                          shape=(len(listing.files), r, r))
        del array  # the header is written; pixels go in through plain file writes
    state = {"completed": 0, "written": 0, "failed": []}
    atomic_write_json(folder / PROGRESS_JSON, state)
    atomic_write_json(folder / BUILD_JSON, {
        "format": CACHE_FORMAT, "settings": settings, "fingerprint": fingerprint,
        "files": list(listing.relative_paths()),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")})
    return state


def _check_disk_space(folder: Path, images_left: int, resolutions: tuple[int, ...],
                      bit_depth: int) -> None:
    need = images_left * sum(r * r for r in resolutions) * storage_dtype(bit_depth).itemsize
    free = shutil.disk_usage(folder).free
    if need > free:
        raise ValueError(f"{folder}: the cache needs about {need / 1e9:.1f} GB more, only "
                         f"{free / 1e9:.1f} GB are free; choose another cache folder, a lower "
                         "max_resolution or bit_depth=8")


def build_cache(spec: DatasetSpec, cache_dir: str | os.PathLike[str], max_resolution: int, *,
                bit_depth: int = 16, square: str = "crop", progress: ProgressFn = no_progress,
                cancel: threading.Event | None = None) -> ImageCache:
    """Build (or continue, or just open) the cache of ``spec`` at 4 ... ``max_resolution`` px.

    Returns at once when a complete cache with the same settings and source fingerprint is
    there; continues a stopped build; rebuilds from scratch when the source or the settings
    changed. Raises :class:`~cxrgan_desktop.core.jobs.Cancelled` when ``cancel`` is set (progress
    is saved first), and ``ValueError`` for bad settings, a folder without usable images, or
    too little disk space.
    """
    resolutions = resolutions_up_to(max_resolution)
    storage_dtype(bit_depth)
    if square not in SQUARE_MODES:
        raise ValueError(f"square must be one of {SQUARE_MODES}, got {square!r}")
    folder = Path(cache_dir)
    with _build_lock(folder, progress, cancel):
        return _build_locked(spec, folder, max_resolution, resolutions, bit_depth, square,
                             progress, cancel)


@contextlib.contextmanager
def _build_lock(folder: Path, progress: ProgressFn, cancel: threading.Event | None
                ) -> Iterator[None]:
    """Hold the cache folder's lock, waiting for another process (or thread) that builds
    the same cache: two audits, a GAN and a classifier, or torchrun ranks sharing a folder
    would otherwise write one set of arrays at once. The waiter then finds the finished
    cache and returns it."""
    said = False
    with contextlib.ExitStack() as held:
        while True:
            check_cancel(cancel)
            try:
                held.enter_context(output_lock(folder, "image cache"))
                break
            except FolderBusy as busy:
                if not said:
                    progress(0.0, f"waiting: {busy}")
                    log.info("waiting for the image cache in %s: %s", folder, busy)
                    said = True
                time.sleep(_LOCK_POLL_S)
        yield


def _build_locked(spec: DatasetSpec, folder: Path, max_resolution: int,
                  resolutions: tuple[int, ...], bit_depth: int, square: str,
                  progress: ProgressFn, cancel: threading.Event | None) -> ImageCache:
    listing = list_dataset(spec)
    fingerprint = listing.fingerprint()
    settings = _normalised(_settings(listing.spec, max_resolution, bit_depth, square))
    total = len(listing.files)

    done = read_json_object(folder / CACHE_JSON)
    if done is not None and done.get("settings") == settings \
            and done.get("fingerprint") == fingerprint:
        try:
            cache = ImageCache.open(folder)
        except ValueError as exc:
            log.warning("rebuilding the image cache: %s", exc)
        else:
            progress(1.0, f"{total}/{total} images")
            return cache

    build = read_json_object(folder / BUILD_JSON)
    state = read_json_object(folder / PROGRESS_JSON)
    resuming = (done is None and build is not None and state is not None
                and build.get("settings") == settings and build.get("fingerprint") == fingerprint
                and build.get("files") == list(listing.relative_paths()))
    if resuming:
        log.info("continuing the image cache in %s at %d of %d images",
                 folder, state["completed"], total)
    else:
        old = done if done is not None else build
        if old is not None or any(folder.glob("res_*.npy")):
            log.info("rebuilding the image cache in %s from scratch: %s", folder,
                     _why_different(old, settings, fingerprint))
        else:
            log.info("building the image cache of %d images in %s", total, folder)
        folder.mkdir(parents=True, exist_ok=True)
        _check_disk_space(folder, total, resolutions, bit_depth)
        state = _start(folder, listing, settings, fingerprint, resolutions, bit_depth)

    try:
        run = _Build(folder, listing, resolutions, bit_depth, state)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # damaged partial build
        log.warning("rebuilding the image cache in %s: %s", folder, exc)
        state = _start(folder, listing, settings, fingerprint, resolutions, bit_depth)
        run = _Build(folder, listing, resolutions, bit_depth, state)
    if resuming:
        _check_disk_space(folder, total - run.completed, resolutions, bit_depth)
    try:
        _run_pass(run, listing, resolutions[-1], square, progress, cancel)
        run.checkpoint()  # the arrays are durable before cache.json says they are complete
    except BaseException:
        try:
            run.checkpoint()
        except OSError as exc:  # e.g. the disk filled up: keep the first error visible
            log.error("could not save the image cache's progress: %s", exc)
        raise
    finally:
        run.close()
    return _finish(folder, listing, run, settings, fingerprint, resolutions, square)


def _run_pass(run: _Build, listing: DatasetListing, max_resolution: int, square: str,
              progress: ProgressFn, cancel: threading.Event | None) -> None:
    total = len(listing.files)
    root = listing.root
    for i in range(run.completed, total):
        check_cancel(cancel)
        path = listing.files[i]
        try:
            pixels = read_image(path).pixels
        except ImageReadError as exc:
            rel = path.relative_to(root).as_posix()
            log.warning("image cache: skipping %s: %s", display_path(rel), exc.problem)
            run.failed.append([rel, exc.problem])
        else:
            h, w = pixels.shape
            if square == "crop" and (max(h, w) - min(h, w)) > _HEAVY_CROP * max(h, w):
                run.heavy_crops += 1
            side = min(h, w) if square == "crop" else max(h, w)
            if side < max_resolution:
                run.upscaled += 1
            run.write(preprocess(pixels, max_resolution, square))
        run.completed = i + 1
        if run.completed % CHECKPOINT_EVERY == 0:
            run.checkpoint()
        progress(run.completed / total, f"{run.completed}/{total} images")


def _finish(folder: Path, listing: DatasetListing, run: _Build, settings: dict[str, Any],
            fingerprint: str, resolutions: tuple[int, ...], square: str) -> ImageCache:
    skipped_count = _write_skipped(folder, listing, run.failed)
    if skipped_count:
        log.info("image cache: %d files under %s are not in the cache; the list with "
                 "reasons is %s", skipped_count, display_path(listing.root),
                 display_path(folder / SKIPPED_CSV))
    failed = {rel for rel, _ in run.failed}
    keep = [i for i, rel in enumerate(listing.relative_paths()) if rel not in failed]
    if not keep:
        raise ValueError(f"{display_path(listing.root)}: none of the {len(listing.files)} "
                         "listed images could be read: "
                         f"{summarise_reasons([r for _, r in run.failed])} (all of them, with "
                         f"reasons: {display_path(folder / SKIPPED_CSV)})")
    if run.failed:
        log.warning("image cache: %d of %d images could not be read and were left out: %s "
                    "(all of them, with reasons: %s)", len(run.failed), len(listing.files),
                    summarise_reasons([r for _, r in run.failed]),
                    display_path(folder / SKIPPED_CSV))
    if run.heavy_crops:
        log.warning("image cache: the centre crop removed more than %d%% of the long side of "
                    "%d images; check that their lungs are whole, or use square='pad'",
                    round(100 * _HEAVY_CROP), run.heavy_crops)
    if run.upscaled:
        log.warning("image cache: %d images were smaller than %d px and were enlarged",
                    run.upscaled, resolutions[-1])
    build = read_json_object(folder / BUILD_JSON) or {}
    rel_paths = listing.relative_paths()
    meta = {
        "format": CACHE_FORMAT,
        "software": "cxrgan-desktop",
        "software_version": cxrgan_desktop.__version__,
        "created": build.get("created"),
        "completed": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "spec": listing.spec.to_json(),
        "fingerprint": fingerprint,
        "bit_depth": run.bit_depth,
        "square": square,
        "method": RESIZE_METHOD,
        "resolutions": list(resolutions),
        "count": len(keep),
        "slots": len(listing.files),
        "files": [rel_paths[i] for i in keep],
        "labels": None if listing.labels is None else [sorted(listing.labels[i]) for i in keep],
        "failed": run.failed,
        "skipped_in_listing": len(listing.skipped),
        "skipped_reasons": listing.skip_summary(),
        "skipped_list": SKIPPED_CSV,
        "heavy_crops": run.heavy_crops,
        "upscaled": run.upscaled,
    }
    atomic_write_json(folder / CACHE_JSON, meta)
    for name in (PROGRESS_JSON, BUILD_JSON):
        (folder / name).unlink(missing_ok=True)
    log.info("image cache ready: %d images, %s px, in %s", len(keep),
             "/".join(map(str, resolutions)), folder)
    return ImageCache.open(folder)


def _write_skipped(folder: Path, listing: DatasetListing, failed: list[list[str]]) -> int:
    """Write ``skipped.csv``: every file under the image folder that is not in the cache,
    with the stage that left it out (``listing``: not an image, filtered, hidden ...;
    ``read``: could not be decoded) and the reason. Returns how many rows it holds."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("stage", "path", "reason"))
    for item in listing.skipped:
        try:
            rel = item.source.relative_to(listing.root).as_posix()
        except ValueError:
            rel = item.source.as_posix()
        writer.writerow(("listing", display_path(rel), item.reason))
    for rel, reason in failed:
        writer.writerow(("read", display_path(rel), reason))
    atomic_write_text(folder / SKIPPED_CSV, buffer.getvalue())
    return len(listing.skipped) + len(failed)
