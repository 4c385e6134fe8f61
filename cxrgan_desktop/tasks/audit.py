"""The memorisation audit: is a generated radiograph too close to a training patient?

Why: synthetic radiographs are shared instead of real ones to protect patients, and a GAN
can reproduce training images almost exactly. For every synthetic image the audit finds its
nearest training images in each feature space, and asks how unusual that closeness is by
comparing it with real patients the generator never saw (the *held-out* images): a held-out
patient's nearest training image is a different person, so the held-out similarities show
how close "a different person" comes. A synthetic image closer to the training set than all
but ``alpha`` (default 0.1 %) of held-out images is flagged.

Feature spaces (see :mod:`~cxrgan_desktop.tasks.audit_file` for the files written):

- ``pixels``: normalised cross-correlation at a small size (invariant to window/level), as
  correlation audits of medical GANs do; catches copies, with or without noise or contrast
  changes, and little else.
- ``reid``: a patient re-identification embedding trained on patient ids (``cxrgan reid
  train``), after Packhaeuser et al. 2022; catches "the same patient", even in another image.

Every image set (training, held-out, synthetic) goes through the training image cache
(:func:`~cxrgan_desktop.engine.training.image_cache.build_cache`): one preprocessing route
(square crop, Lanczos resize, 2x2 means) for all three, so a copy of a training image meets
the same arithmetic as the original. Training and held-out features are stored beside their
image cache, keyed by the cache's fingerprint and everything that decides the space, so a
rerun against the same training folder costs only the synthetic side.

The three image sets must be different files, and the audit refuses (before writing
anything) when they are not, because every such audit would give a confident, wrong answer:
synthetic images that *are* training files (the synthetic folder is the training folder, or
inside it, or holds it) would all be "copies" of themselves; held-out images that are
training files (a held-out folder equal to the training folder: with file names that carry
no patient id, the patient check cannot see it) would set the threshold at similarity 1 and
flag nothing; synthetic images that are held-out images would calibrate themselves. Files
are compared by path (after resolving the folders), so a copy or a link to a training image
in the synthetic folder is still audited: it is what the audit exists to find. The output
folder may not lie inside an input folder either, where the next run would read its contact
sheet (and generated images) as inputs.

The output folder is written in one step: ``audit.csv``, ``neighbours.csv``, the contact
sheet and, last, ``summary.json`` (which records the others' SHA-256) go to temporary files
first and are renamed only when all are written, so a full disk changes none of them and a
kill leaves either the earlier audit or one that :func:`~cxrgan_desktop.tasks.audit_file.
read_audit` refuses as changed; the rerun, holding the folder's lock, removes the orphaned
temporary files.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import atomic_write_many, remove_orphan_temps, sha256_file
from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress, sub_progress
from cxrgan_desktop.core.output_lock import output_lock
from cxrgan_desktop.engine.training.dataset import DatasetSpec, list_dataset
from cxrgan_desktop.engine.training.image_cache import (
    CACHE_JSON,
    ImageCache,
    build_cache,
    default_cache_dir,
)
from cxrgan_desktop.imaging.pixel_hash import pixel_sha256
from cxrgan_desktop.imaging.readers import ImageReadError, read_image
from cxrgan_desktop.labels.chestxray14 import read_data_entry_csv
from cxrgan_desktop.metrics.feature_cache import FeatureCache
from cxrgan_desktop.metrics.nearest import Neighbours, nearest_neighbours
from cxrgan_desktop.metrics.relative_fd import patient_id_of
from cxrgan_desktop.tasks.audit_file import (
    AUDIT_CSV,
    DEFAULT_ALPHA,
    DEFAULT_K,
    DEFAULT_PIXEL_SIZE,
    FORMAT,
    NEIGHBOURS_CSV,
    SPACES,
    SUMMARY_JSON,
    SYNTHETIC_FOLDER,
    AuditReport,
    AuditRow,
    SpaceMatch,
    audit_csv_text,
    neighbours_csv_text,
    ranked,
    read_audit,
    risk_of,
    summary_text,
)

log = logging.getLogger(__name__)

FEATURE_VERSION = 1  # bump when a space's features change meaning: old cached ones are missed
CONTACT_PAIRS = 8
_LARGEST_CACHE = 1024


@dataclass(frozen=True)
class AuditOptions:
    """What to audit against what. ``synthetic`` is a folder, or ``model:NAME`` (an installed
    model's name or a model file) from which ``n`` images are generated with ``seed``;
    ``held_out`` is a folder of real images never trained on, or a training run folder whose
    ``held_out.json`` names the images of ``train_dir`` that the run kept out."""

    train_dir: Path
    out_dir: Path
    synthetic: str
    held_out: Path
    labels_csv: Path | None = None
    n: int | None = None
    seed: int = 0
    spaces: tuple[str, ...] = ("pixels", "reid")
    reid_model: str | None = None
    k: int = DEFAULT_K
    alpha: float = DEFAULT_ALPHA
    pixel_size: int = DEFAULT_PIXEL_SIZE
    device: str = "cpu"
    batch_size: int = 32
    inception_weights: Path | None = None  # None: the installed FID weights (cxrgan fid-weights)
    allow_unverified_weights: bool = False

    def check(self) -> None:
        unknown = [s for s in self.spaces if s not in SPACES]
        if unknown or not self.spaces:
            raise ValueError(f"unknown feature space(s) {unknown}; choose from "
                             f"{', '.join(SPACES)}")
        if "reid" in self.spaces and not self.reid_model:
            raise ValueError("the reid space needs a re-identification model (--reid NAME or "
                             "FILE; train one with `cxrgan reid train`), or leave it out "
                             "with --spaces pixels")
        if not 0.0 <= self.alpha < 1.0:
            raise ValueError(f"alpha must be in [0, 1), got {self.alpha}")
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        if self.synthetic.startswith("model:") and self.n is None:
            raise ValueError(f"{self.synthetic}: give the number of images to generate (--n)")
        if self.pixel_size < 4 or self.pixel_size & (self.pixel_size - 1):
            raise ValueError(f"the pixel space's size must be a power of two >= 4, got "
                             f"{self.pixel_size}")


# -- the image sets -------------------------------------------------------------------------

@dataclass
class ImageSet:
    """One side of the audit: cached images, the rows used, and a patient per row."""

    name: str
    cache: ImageCache
    rows: np.ndarray  # int64 indices into the cache
    patients: list[str]  # one per row
    files: list[str]  # relative to the cache's image folder, one per row
    note: str = ""

    @property
    def root(self) -> Path:
        return self.cache.spec.image_dir

    def __len__(self) -> int:
        return len(self.rows)


def cache_resolution(needed: int) -> int:
    resolution = 4
    while resolution < needed:
        resolution *= 2
    return resolution


def open_or_build_cache(spec: DatasetSpec, resolution: int, progress: ProgressFn,
                        cancel: threading.Event | None) -> ImageCache:
    """A complete cache of ``spec`` at ``resolution`` px or more: a training run's larger cache
    when one is there and still describes the folder, else one built (or resumed) here."""
    fingerprint: str | None = None
    candidate = _LARGEST_CACHE
    while candidate > resolution:
        folder = default_cache_dir(spec, candidate)
        if (folder / CACHE_JSON).is_file():
            if fingerprint is None:
                fingerprint = list_dataset(spec).fingerprint()
            try:
                cache = ImageCache.open(folder)
            except ValueError:
                cache = None
            if cache is not None and cache.fingerprint == fingerprint:
                progress(1.0, f"reusing the {candidate} px image cache")
                return cache
        candidate //= 2
    return build_cache(spec, default_cache_dir(spec, resolution), resolution,
                       progress=progress, cancel=cancel)


def _patients_of(cache: ImageCache, labels_csv: Path | None) -> tuple[list[str], str]:
    """A patient id per cached image: the label file's ``Patient ID`` when given, else the
    ChestX-ray14 name's patient part, else the image is its own patient (and the note says
    so, because follow-ups of one patient then count as different people)."""
    if labels_csv is not None:
        by_name = {e.image_index: str(e.patient_id) for e in read_data_entry_csv(labels_csv)}
        missing = [f for f in cache.files if Path(f).name not in by_name]
        if missing:
            raise ValueError(f"{labels_csv}: no row for {len(missing)} image(s), e.g. "
                             f"{missing[0]}; give the label file of this folder")
        return [by_name[Path(f).name] for f in cache.files], ""
    ids, guessed = [], 0
    for f in cache.files:
        found = patient_id_of(f)
        if found is None:
            guessed += 1
            found = f"file:{f}"
        ids.append(found)
    note = (f"{guessed} of {len(ids)} images have no patient id (no label file, no "
            "ChestX-ray14 name): each counts as its own patient") if guessed else ""
    return ids, note


def _image_set(name: str, spec: DatasetSpec, resolution: int, progress: ProgressFn,
               cancel: threading.Event | None) -> ImageSet:
    cache = open_or_build_cache(spec, resolution, progress, cancel)
    patients, note = _patients_of(cache, spec.labels_csv)
    return ImageSet(name, cache, np.arange(cache.count, dtype=np.int64), patients,
                    list(cache.files), note)


def _subset(whole: ImageSet, name: str, keep: np.ndarray) -> ImageSet:
    return ImageSet(name, whole.cache, whole.rows[keep], [whole.patients[i] for i in keep],
                    [whole.files[i] for i in keep], whole.note)


def split_by_run(train: ImageSet, run_dir: Path) -> tuple[ImageSet, ImageSet, dict[str, Any]]:
    """(trained on, held out) from a run folder's record of the images it kept out."""
    from cxrgan_desktop.engine.training.holdout import read_held_out

    held = read_held_out(run_dir)
    if Path(held.image_dir).resolve() != train.root.resolve():
        raise ValueError(f"{run_dir}: this run held out images of {held.image_dir}, not of "
                         f"the training folder {train.root}; give that folder as --train")
    wanted = set(held.files)
    out = np.array([f in wanted for f in train.files], dtype=bool)
    missing = len(wanted) - int(out.sum())
    if missing:
        raise ValueError(f"{run_dir}: {missing} held-out image(s) are no longer in "
                         f"{train.root}; the folder changed since training")
    if not out.any():
        raise ValueError(f"{run_dir}: the run held out no images (trained with a hold-out "
                         "fraction of 0); give a folder of real images never trained on")
    record = {"source": "training run", "run": str(run_dir.resolve()),
              "fraction": held.fraction, "seed": held.seed, "files_sha256": held.files_sha256}
    return (_subset(train, "training", np.flatnonzero(~out)),
            _subset(train, "held-out", np.flatnonzero(out)), record)


# -- features -------------------------------------------------------------------------------

FeatureFn = Callable[[Any], np.ndarray]  # [B, 1, R, R] float tensor in [0, 1] -> [B, D]


@dataclass
class Space:
    """One feature space: how to embed a batch, and what decides the result (cache key)."""

    name: str
    resolution: int  # cache level it reads
    embed: FeatureFn
    identity: dict[str, Any]
    description: str


def pixel_space(size: int) -> Space:
    from cxrgan_desktop.metrics.pixel_ncc import ncc_vectors, pixel_space_identity

    return Space("pixels", cache_resolution(size), lambda batch: ncc_vectors(batch, size),
                 pixel_space_identity(size),
                 f"normalised cross-correlation of {size} x {size} px images")


def reid_space(model: str, device: str) -> Space:
    from cxrgan_desktop.engine.reid.files import load_reid
    from cxrgan_desktop.engine.reid.installed import resolve_reid

    try:
        path = resolve_reid(model)
    except FileNotFoundError as error:
        raise ValueError(f"{error}; give a .safetensors file or an installed name (train one "
                         "with `cxrgan reid train`)") from error
    loaded = load_reid(path)
    network_device = device

    def embed(batch: Any) -> np.ndarray:
        return loaded.embed(batch.to(network_device))

    loaded.network.to(network_device)
    auroc = loaded.provenance.get("verification_auroc")
    described = f"re-identification embedding {loaded.path.name}"
    if isinstance(auroc, (int, float)):
        described += f" (held-out verification AUROC {auroc:.3f})"
    return Space("reid", cache_resolution(loaded.spec.input_size), embed,
                 dict(loaded.identity), described)


INCEPTION_RESOLUTION = 256
"""Cache level the Inception space reads (it resizes to 299 px itself): enough detail for
its features without a 1024 px cache for every audit."""


def inception_space(weights: Path | None, verify: bool, device: str) -> Space:
    from cxrgan_desktop.metrics.fid_features import FeatureExtractor
    from cxrgan_desktop.metrics.fid_settings import Preprocessing
    from cxrgan_desktop.metrics.inception_weights import WeightsError, load_inception
    from cxrgan_desktop.metrics.nearest import unit_rows

    try:
        loaded = load_inception(weights, verify=verify)
    except WeightsError as error:
        raise ValueError(f"the inception space needs the FID Inception weights: {error} "
                         "(install them with `cxrgan fid-weights`, or leave the space out)"
                         ) from error
    preprocessing = Preprocessing()
    extractor = FeatureExtractor(loaded.net, device, preprocessing)
    return Space("inception", INCEPTION_RESOLUTION,
                 lambda batch: unit_rows(extractor.batch_features(batch)),
                 {"space": "inception", "weights_sha256": loaded.sha256,
                  "preprocessing": preprocessing.to_dict(),
                  "similarity": "cosine of the 2048-d pool features"},
                 "cosine similarity of FID Inception features"
                 + ("" if loaded.verified else " (unverified weights)"))


def make_spaces(options: AuditOptions) -> list[Space]:
    """The spaces ``options`` asks for, networks loaded (a missing file fails before work)."""
    out = []
    for name in options.spaces:
        if name == "pixels":
            out.append(pixel_space(options.pixel_size))
        elif name == "reid":
            out.append(reid_space(options.reid_model or "", options.device))
        else:
            out.append(inception_space(options.inception_weights,
                                       not options.allow_unverified_weights, options.device))
    return out


def _feature_key(images: ImageSet, space: Space) -> str:
    return json.dumps({"version": FEATURE_VERSION, "cache": images.cache.fingerprint,
                       "cache_settings": images.cache.meta.get("settings"),
                       "resolution": space.resolution, "space": space.identity},
                      sort_keys=True, separators=(",", ":"))


def set_features(images: ImageSet, space: Space, batch_size: int, progress: ProgressFn,
                 cancel: threading.Event | None, use_cache: bool = True) -> np.ndarray:
    """Features of every cached image of ``images`` (rows selected afterwards), stored with
    the image cache so a second audit of the same folder reuses them."""
    store = FeatureCache(images.cache.cache_dir / "audit_features")
    key = _feature_key(images, space)
    cached = store.load(key) if use_cache else None
    if cached is not None and len(cached.features) == images.cache.count:
        progress(1.0, f"{images.name}: {space.name} features from the cache")
        return cached.features[images.rows]
    count = images.cache.count
    parts = []
    for start in range(0, count, batch_size):
        check_cancel(cancel)
        index = np.arange(start, min(start + batch_size, count))
        parts.append(np.asarray(space.embed(images.cache.batch(space.resolution, index)),
                                dtype=np.float32))
        progress(min(start + batch_size, count) / count,
                 f"{images.name}: {space.name} features, {min(start + batch_size, count)} "
                 f"of {count}")
    features = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
    if use_cache:
        try:
            store.store(key, features, [], list(images.cache.files))
        except OSError as error:  # a full disk costs the reuse, not the audit
            log.warning("could not store %s features: %s", space.name, error)
    return features[images.rows]


# -- calibration ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Calibration:
    """How close held-out real patients come to the training set, in one space."""

    heldout_similarities: np.ndarray  # [H] each held-out image's nearest training similarity
    alpha: float

    @property
    def allowed(self) -> int:
        """How many held-out images may be at least as close as a flagged image."""
        return math.floor(self.alpha * len(self.heldout_similarities) + 1e-12)

    @property
    def threshold(self) -> float:
        """A similarity above this is flagged: the ``allowed + 1``-th largest held-out one."""
        ordered = np.sort(self.heldout_similarities)[::-1]
        return float(ordered[min(self.allowed, len(ordered) - 1)])

    def heldout_fraction(self, similarities: np.ndarray) -> np.ndarray:
        """Share of held-out images at least as similar to their nearest training image."""
        ordered = np.sort(self.heldout_similarities)
        below = np.searchsorted(ordered, np.asarray(similarities, np.float32), side="left")
        return (len(ordered) - below) / len(ordered)

    def flagged(self, similarities: np.ndarray) -> np.ndarray:
        at_least = np.rint(self.heldout_fraction(similarities) * len(self.heldout_similarities))
        return at_least <= self.allowed


# -- the job --------------------------------------------------------------------------------

@dataclass
class _Side:
    """Synthetic images: where they are, their pixel hashes, what could not be read."""

    images: ImageSet
    hashes: list[str]
    skipped: list[str] = field(default_factory=list)
    generated: dict[str, Any] | None = None


def _generate(options: AuditOptions, folder: Path, progress: ProgressFn,
              cancel: threading.Event | None) -> dict[str, Any]:
    """Generate ``n`` images from the model into ``folder`` (16-bit PNG), as ``cxrgan
    generate --seed`` would draw them; an earlier complete set of the same recipe is kept."""
    from cxrgan_desktop.engine.checkpoints import load_generator
    from cxrgan_desktop.engine.render import Renderer
    from cxrgan_desktop.imaging.png16 import encode_png16
    from cxrgan_desktop.store import zoo

    location = options.synthetic[len("model:"):]
    model = load_generator(zoo.resolve_model(location))
    assert options.n is not None
    recipe = {"model": location, "model_sha256": model.sha256, "n": options.n,
              "seed": options.seed, "software_version": __version__,
              "trained_held_out": model.provenance.get("held_out")}
    record_path = folder / "generated.json"
    if record_path.is_file():
        try:
            old = json.loads(record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if old == recipe and len(list(folder.glob("*.png"))) == options.n:
            progress(1.0, "synthetic images from the earlier run")
            return recipe
    folder.mkdir(parents=True, exist_ok=True)
    remove_orphan_temps(folder)  # a killed run's (the audit folder's lock is held)
    for stale in folder.glob("*.png"):
        stale.unlink()
    record_path.unlink(missing_ok=True)
    renderer = Renderer(model, options.device)
    width = max(5, len(str(options.n - 1)))
    done = 0
    for batch in renderer.render_seeded(options.seed, options.n, options.batch_size, cancel):
        files = {}
        for image in batch.detach().cpu().numpy()[:, 0]:
            files[folder / f"generated_{done:0{width}d}.png"] = encode_png16(image)
            done += 1
        atomic_write_many(files)
        progress(done / options.n, f"generated {done} of {options.n}")
    atomic_write_many({record_path: (json.dumps(recipe, indent=2) + "\n").encode()})
    return recipe


def _synthetic_side(options: AuditOptions, resolution: int, progress: ProgressFn,
                    cancel: threading.Event | None) -> _Side:
    generated = None
    if options.synthetic.startswith("model:"):
        folder = options.out_dir / SYNTHETIC_FOLDER
        generated = _generate(options, folder, sub_progress(progress, 0.0, 0.6), cancel)
        spec = DatasetSpec(folder)
    else:
        folder = Path(options.synthetic)
        if not folder.is_dir():
            raise ValueError(f"{folder}: no such folder of synthetic images; give a folder or "
                             "model:NAME")
        spec = DatasetSpec(folder, max_images=options.n)
    images = _image_set("synthetic", spec, resolution, sub_progress(progress, 0.6, 0.9), cancel)
    skipped = [f"{path}: {reason}" for path, reason in images.cache.failed]
    hashes, keep = [], []
    for i, rel in enumerate(images.files):
        check_cancel(cancel)
        try:
            hashes.append(pixel_sha256(read_image(images.root / rel).pixels))
            keep.append(i)
        except ImageReadError as error:  # changed since the cache read it: report, go on
            skipped.append(str(error))
    progress(1.0, f"{len(keep)} synthetic images")
    return _Side(_subset(images, "synthetic", np.array(keep, dtype=np.int64)), hashes,
                 skipped, generated)


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def check_out_folder(options: AuditOptions) -> None:
    """The audit folder must not lie in an input folder: the next audit (or training run)
    would read its contact sheet, and the images it generated, as inputs."""
    out = Path(options.out_dir)
    inputs = [("training", Path(options.train_dir))]
    held = Path(options.held_out)
    if not (held / "held_out.json").is_file():
        inputs.append(("held-out", held))
    if not options.synthetic.startswith("model:"):
        inputs.append(("synthetic", Path(options.synthetic)))
    for name, folder in inputs:
        if folder.is_dir() and _inside(out, folder):
            raise ValueError(f"{out}: the audit folder is inside the {name} folder {folder}; "
                             "its contact sheet and generated images would be read as "
                             f"{name} images by the next run. Choose an --out outside it")


def _same_files(a: ImageSet, b: ImageSet) -> list[str]:
    """Files of ``b`` that are files of ``a`` (by path, folders resolved): only possible
    when one root is the other or holds it, so other sets cost nothing."""
    ra, rb = a.root.resolve(), b.root.resolve()
    if not (ra == rb or ra in rb.parents or rb in ra.parents):
        return []
    mine = {(ra / f).as_posix() for f in a.files}
    return [f for f in b.files if (rb / f).as_posix() in mine]


def check_separate(train: ImageSet, held: ImageSet, synthetic: ImageSet,
                   held_from_run: bool) -> None:
    """Refuse image sets that share files (see the module docstring for why each pair)."""
    problems = [
        (train, synthetic, "synthetic", "training", "every one would be found as its own "
         "copy. Give a folder of generated images that is not the training folder and lies "
         "outside it"),
        (held, synthetic, "synthetic", "held-out", "they would calibrate themselves. Give "
         "synthetic and held-out images in separate folders"),
    ]
    if not held_from_run:
        problems.append((train, held, "held-out", "training", "the calibration would "
                         "compare training images with themselves (similarity 1) and flag "
                         "nothing. Give real images of patients never trained on, in a "
                         "folder outside the training folder, or the training run folder"))
    for a, b, b_name, a_name, why in problems:
        shared = _same_files(a, b)
        if shared:
            raise ValueError(f"{b.root}: {len(shared)} of the {len(b)} {b_name} images are "
                             f"{a_name} images (the same files, e.g. {shared[0]}, under "
                             f"{a.root}): {why}")


def _check_disjoint(train: ImageSet, held: ImageSet) -> None:
    """Held-out images must be other patients, or the calibration would call a training
    patient's follow-up normal."""
    if held.note or train.note:
        return  # ids are guessed per file: nothing to compare (the summary carries the note)
    shared = set(train.patients) & set(held.patients)
    if shared:
        raise ValueError(f"{held.root}: {len(shared)} held-out patient(s) are also in the "
                         f"training set (e.g. patient {sorted(shared)[0]}); held-out images "
                         "must come from patients never trained on")


def run_audit(options: AuditOptions, progress: ProgressFn = no_progress,
              cancel: threading.Event | None = None) -> AuditReport:
    """Audit ``options.synthetic`` against the training images; write the audit folder and
    return it read back. Raises ``ValueError`` with the file and the fix for unusable input,
    :class:`~cxrgan_desktop.core.jobs.Cancelled` when cancelled (nothing half-written)."""
    options.check()
    check_out_folder(options)
    out = Path(options.out_dir)
    with output_lock(out, "audit"):
        return _run_locked(options, out, progress, cancel)


def _run_locked(options: AuditOptions, out: Path, progress: ProgressFn,
                cancel: threading.Event | None) -> AuditReport:
    started = _dt.datetime.now(_dt.UTC)
    spaces = make_spaces(options)
    resolution = max(space.resolution for space in spaces)

    progress(0.0, "training images")
    train_spec = DatasetSpec(Path(options.train_dir), options.labels_csv)
    train = _image_set("training", train_spec, resolution, sub_progress(progress, 0.0, 0.3),
                       cancel)
    held_dir = Path(options.held_out)
    if (held_dir / "held_out.json").is_file():
        train, held, held_record = split_by_run(train, held_dir)
    else:
        if not held_dir.is_dir():
            raise ValueError(f"{held_dir}: no such folder; give real images never trained "
                             "on, or the training run folder that recorded its hold-out")
        held_labels = _labels_beside(held_dir)
        held = _image_set("held-out", DatasetSpec(held_dir, held_labels), resolution,
                          sub_progress(progress, 0.3, 0.4), cancel)
        held_record = {"source": "folder", "folder": str(held_dir.resolve()),
                       "labels_csv": None if held_labels is None else str(held_labels)}
        _check_disjoint(train, held)
    if len(held) < 2:
        raise ValueError(f"{held_dir}: at least 2 held-out images are needed to calibrate")
    side = _synthetic_side(options, resolution, sub_progress(progress, 0.4, 0.5), cancel)
    _check_model_hold_out(side.generated, held_record)
    check_separate(train, held, side.images, held_record.get("source") == "training run")
    if len(side.images) == 0:
        raise ValueError(f"{options.synthetic}: no readable synthetic images "
                         f"({'; '.join(side.skipped[:3])})")

    found: dict[str, tuple[Neighbours, Calibration]] = {}
    step = 0.45 / len(spaces)
    for k, space in enumerate(spaces):
        lo = 0.5 + k * step
        feats = {name: set_features(images, space, options.batch_size,
                                    sub_progress(progress, lo + j * step / 4,
                                                 lo + (j + 1) * step / 4), cancel)
                 for j, (name, images) in enumerate((("train", train), ("held", held),
                                                     ("synthetic", side.images)))}
        kk = min(options.k, len(train))
        near = nearest_neighbours(feats["synthetic"], feats["train"], kk,
                                  progress=sub_progress(progress, lo + 0.75 * step,
                                                        lo + 0.9 * step), cancel=cancel)
        held_near = nearest_neighbours(feats["held"], feats["train"], 1, cancel=cancel)
        found[space.name] = (near, Calibration(held_near.similarities[:, 0], options.alpha))

    progress(0.95, "writing the audit")
    rows, neighbours = _rows(side, train, found)
    summary = _summary(options, spaces, train, held, held_record, side, found, rows, started)
    csv_text = audit_csv_text(rows, [s.name for s in spaces])
    sheet = _contact_sheet(AuditReport(out, rows, tuple(s.name for s in spaces), summary))
    _write(out, csv_text, neighbours_csv_text(neighbours), sheet, summary)
    report = read_audit(out)
    progress(1.0, f"{len(report.flagged)} of {len(report.rows)} flagged")
    return report


def _check_model_hold_out(generated: dict[str, Any] | None, held_record: dict[str, Any]
                          ) -> None:
    """A model that records its training hold-out must be calibrated with that very list
    when a run folder is given: another run's list would call images the model saw unseen."""
    trained = (generated or {}).get("trained_held_out") or {}
    recorded = trained.get("files_sha256")
    if recorded and held_record.get("source") == "training run" \
            and held_record.get("files_sha256") != recorded:
        raise ValueError(f"{held_record['run']}: its held_out.json is not the hold-out this "
                         f"model was trained with (the model records list {recorded[:12]}..., "
                         f"the run {str(held_record.get('files_sha256'))[:12]}...); give the "
                         "run folder that made this model")


def _labels_beside(folder: Path) -> Path | None:
    """A held-out folder's own ChestX-ray14 label file, when exactly one sits in it."""
    found = sorted(folder.glob("Data_Entry*.csv"))
    return found[0] if len(found) == 1 else None


def _rows(side: _Side, train: ImageSet, found: dict[str, tuple[Neighbours, Calibration]]
          ) -> tuple[list[AuditRow], list[tuple[str, str, int, str, str, float]]]:
    per_space = {}
    for name, (near, calibration) in found.items():
        top = near.similarities[:, 0]
        per_space[name] = (near, calibration.heldout_fraction(top), calibration.flagged(top))
    rows, neighbours = [], []
    for i, rel in enumerate(side.images.files):
        matches = {}
        for name, (near, fraction, flagged) in per_space.items():
            j = int(near.indices[i, 0])
            matches[name] = SpaceMatch(train.files[j], train.patients[j],
                                       float(near.similarities[i, 0]), float(fraction[i]),
                                       bool(flagged[i]))
            for rank in range(near.indices.shape[1]):
                t = int(near.indices[i, rank])
                neighbours.append((rel, name, rank + 1, train.files[t], train.patients[t],
                                   float(near.similarities[i, rank])))
        rows.append(AuditRow(0, rel, side.hashes[i], any(m.flagged for m in matches.values()),
                             risk_of(matches), matches))
    return ranked(rows), neighbours


def _summary(options: AuditOptions, spaces: Sequence[Space], train: ImageSet, held: ImageSet,
             held_record: dict[str, Any], side: _Side,
             found: dict[str, tuple[Neighbours, Calibration]], rows: list[AuditRow],
             started: _dt.datetime) -> dict[str, Any]:
    space_info = {}
    for space in spaces:
        _near, calibration = found[space.name]
        flagged = [r for r in rows if r.matches[space.name].flagged]
        space_info[space.name] = {
            "description": space.description, "identity": space.identity,
            "resolution": space.resolution,
            "threshold_similarity": calibration.threshold,
            "flag_rule": "similarity > threshold_similarity (at most "
                         f"{calibration.allowed} of {len(held)} held-out images as close)",
            "heldout_similarity": {
                "min": float(calibration.heldout_similarities.min()),
                "median": float(np.median(calibration.heldout_similarities)),
                "max": float(calibration.heldout_similarities.max())},
            "flagged": len(flagged),
            "distinct_training_patients_matched": len(
                {r.matches[space.name].patient for r in flagged}),
        }
    flagged = [r for r in rows if r.flagged]
    notes = [n for n in (train.note, held.note) if n]
    if len(held) * options.alpha < 1:
        notes.append(f"{len(held)} held-out images resolve the held-out fraction only to "
                     f"1/{len(held)}: with alpha {options.alpha} an image is flagged when no "
                     "held-out image comes as close; more held-out images give a finer "
                     "threshold")
    return {
        "format": FORMAT,
        "software": f"cxrgan-desktop {__version__}",
        "started": started.isoformat(timespec="seconds"),
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "alpha": options.alpha, "k": options.k,
        "train": {"image_dir": str(train.root.resolve()),
                  "labels_csv": None if options.labels_csv is None
                  else str(Path(options.labels_csv).resolve()),
                  "fingerprint": train.cache.fingerprint, "images": len(train),
                  "patients": len(set(train.patients))},
        "held_out": {**held_record, "images": len(held), "patients": len(set(held.patients))},
        "synthetic": {"source": options.synthetic, "root": str(side.images.root.resolve()),
                      "images": len(side.images), "skipped": side.skipped,
                      "generated": side.generated},
        "spaces": space_info,
        "flagged": len(flagged),
        "distinct_training_patients_matched": len(
            {m.patient for r in flagged for m in r.matches.values() if m.flagged}),
        "notes": notes,
    }


def _write(out: Path, csv_text: str, neighbours_text: str, sheet: dict[str, bytes],
           summary: dict[str, Any]) -> None:
    """Every file together (temporary files first, then the renames, ``summary.json`` last):
    the summary records the others' SHA-256, so a reader can tell a half-renamed folder."""
    import hashlib

    files = {AUDIT_CSV: csv_text.encode(), NEIGHBOURS_CSV: neighbours_text.encode(), **sheet}
    summary["files"] = {name: {"sha256": hashlib.sha256(data).hexdigest()}
                        for name, data in files.items()}
    atomic_write_many({**{out / name: data for name, data in files.items()},
                       out / SUMMARY_JSON: summary_text(summary).encode()})
    assert sha256_file(out / AUDIT_CSV) == summary["files"][AUDIT_CSV]["sha256"]


CONTACT_SHEETS = ("contact_sheet.png", "contact_sheet.pdf")


def _contact_sheet(report: AuditReport, pairs: int = CONTACT_PAIRS) -> dict[str, bytes]:
    """The closest pairs side by side (PNG and PDF bytes by file name), read from the
    original files."""
    from cxrgan_desktop.tasks.audit_sheet import contact_sheet, encode_sheet

    shown = []
    for row in report.rows[:pairs]:
        space = max(row.matches, key=lambda s: (row.matches[s].flagged,
                                                -row.matches[s].heldout_fraction))
        match = row.matches[space]
        try:
            synthetic = read_image(report.synthetic_path(row)).pixels
            training = read_image(report.training_path(match)).pixels
        except ImageReadError as error:
            log.warning("contact sheet: %s", error)
            continue
        shown.append((synthetic, training,
                      f"#{row.rank} {row.synthetic_file}" + (" FLAGGED" if row.flagged else ""),
                      f"{space}: {match.training_file} (patient {match.patient}), "
                      f"similarity {match.similarity:.3f}, held-out {match.heldout_fraction:.1%}"))
    sheet = contact_sheet(shown)
    return {name: encode_sheet(sheet, Path(name)) for name in CONTACT_SHEETS}
