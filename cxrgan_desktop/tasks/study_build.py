"""Build a reader study: choose the images, pass them all through one pipeline, write the
package and the key, and audit the package for leaks.

Real images come from folders (any format the viewer reads); synthetic ones from folders
(an LCO archive's findings are carried into the key, for a per-finding breakdown) or drawn
from a model with the study seed. Which source images are drawn (and a model's latents)
follows the seed, so the same plan chooses the same images; everything a reader must not
learn (the case ids, which case is which source, the practice order) comes from the
operating system's randomness and is recorded only in the key: a seed can be guessed and
replayed (see :mod:`cxrgan_desktop.study.seed_replay`).

The package is written under a hidden name, audited, and only then given its final name: a
package that fails the leak audit is removed unless the organiser forces it.

With a memorisation audit (``exclude_flagged``), synthetic candidates the audit flagged (by
their pixels, so a renamed copy or a re-saved file is recognised, or by their path) are never
drawn (a DICOM by its stored values too, as ``cxrgan generate --format dicom`` wrote them:
the reader applies the file's window, and a window other than the full range changes the
pixels it gives, so a flagged image exported with ``--window`` would otherwise be drawn):
a folder source takes the next unflagged file of the same seeded permutation, a model
source the next sample indices of the same seed. The audit's record goes only into the key:
the package is built exactly as it would be had the flagged images never existed, so nothing
a reader holds depends on the exclusion except which images are shown.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import stat
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop.core.fileio import sha256_file
from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress, sub_progress
from cxrgan_desktop.imaging.pixel_hash import pixel_sha256
from cxrgan_desktop.imaging.readers import ImageReadError, image_files, missing_inputs, read_image
from cxrgan_desktop.study.design import ID_ALPHABET, ID_LENGTH, StudySettings
from cxrgan_desktop.study.key import KeyCase, StudyKey, write_key
from cxrgan_desktop.study.leak_audit import AuditReport, audit_package, layout_separates
from cxrgan_desktop.study.package import SUFFIX, write_package
from cxrgan_desktop.study.pipeline import prepare_case
from cxrgan_desktop.tasks.audit_file import FlaggedImages, read_flagged


class AuditFailed(Exception):
    """The leak audit failed, so no package was written; ``report`` says which checks."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        super().__init__("the leak audit FAILED, so no package was written (" +
                         "; ".join(f"{c.name}: {c.detail}"
                                   for c in report.blocking_failures()) + ")")


@dataclass
class StudyPlan:
    real: list[str]  # folders or files
    n_real: int
    n_synthetic: int
    synthetic: list[str] = field(default_factory=list)  # folders or files, or
    model: str | None = None  # an installed model name or file, sampled with the seed
    seed: int = 0
    practice: int = 0  # practice cases per class, never scored
    settings: StudySettings = field(default_factory=StudySettings)
    device: str = "cpu"
    readers: int = 0  # readers the organiser plans for (0: not said); scoring checks it
    exclude_flagged: str = ""  # a memorisation audit (folder or audit.csv): never draw its
    # flagged images; "" for none
    truncation: float = 1.0  # psi for a model source (engine/truncation.py); 1: none

    def __post_init__(self) -> None:
        if self.n_real < 1 or self.n_synthetic < 1:
            raise ValueError("a study needs at least one real and one synthetic case")
        if self.readers < 0:
            raise ValueError(f"reader count must be 0 or more, got {self.readers}")
        if bool(self.synthetic) == bool(self.model):
            raise ValueError("give synthetic images as folders or as a model, not both or "
                             "neither")
        # engine.truncation.check_psi's rule, here without importing torch: the window
        # builds a plan on its GUI thread
        psi = self.truncation
        if isinstance(psi, bool) or not isinstance(psi, int | float) or not 0.0 <= psi <= 1.0:
            raise ValueError(f"truncation psi must be between 0 and 1 (1: no truncation), "
                             f"got {psi!r}")
        self.truncation = float(psi)
        if self.truncation != 1.0 and not self.model:
            raise ValueError("truncation applies to images drawn from a model; synthetic "
                             "images from folders were made already")


@dataclass
class Prepared:
    levels: np.ndarray
    source: str
    labels: list[str]
    native_size: list[int]  # [height, width] before the pipeline: the audit compares them


@dataclass
class BuildResult:
    package: Path
    key: Path
    audit: AuditReport
    skipped: list[str]
    excluded: list[str] = field(default_factory=list)  # synthetic candidates the audit flagged
    exclusion: dict[str, Any] | None = None  # the audit's record, as the key holds it


def stored_values_hash(path: Path) -> str | None:
    """The pixel hash of a DICOM's stored values read as this program stores images (16-bit,
    value = round(65535 x), no windowing), whatever VOI window or rescale its header carries;
    None when its values cannot be such an image (not 2-D 16-bit-range integers, unreadable).
    """
    import pydicom

    try:
        values = pydicom.dcmread(path).pixel_array
    except Exception:  # read_image read it; a decoder can fail in any way on its own terms
        return None
    if values.ndim != 2 or values.dtype.kind not in "ui" or values.size == 0 \
            or values.min() < 0 or values.max() > 65535:
        return None
    return pixel_sha256(values.astype(np.float64) / 65535.0)


class _Exclusion:
    """The flagged images of an audit, and the synthetic candidates they kept out of a draw."""

    def __init__(self, flagged: FlaggedImages | None) -> None:
        self.flagged = flagged
        self.excluded: list[str] = []

    def keeps_out(self, source: str, path: Path | None, pixels: np.ndarray | None,
                  stored: Path | None = None) -> bool:
        """True (and noted) when the audit flagged this candidate by its path or pixels, or
        (``stored``: a DICOM file) by its stored values."""
        if self.flagged is None:
            return False
        hashed = None if pixels is None else pixel_sha256(pixels)
        if self.flagged.is_flagged(path=path, pixel_hash=hashed) or (
                stored is not None and self.flagged.is_flagged(
                    pixel_hash=stored_values_hash(stored))):
            self.excluded.append(source)
            return True
        return False

    @property
    def audit(self) -> str:
        return str(self.flagged.audit_csv) if self.flagged is not None else ""

    def shortage(self, where: str, made: int, count: int) -> str:
        """The message for a draw that ran out: how many were left out, how many are left."""
        return (f"{where}: {len(self.excluded)} synthetic image(s) flagged by the memorisation "
                f"audit {self.audit} were left out and only {made} readable image(s) are left; "
                f"the study asks for {count}. Lower the synthetic count or give more "
                "synthetic images")

    def record(self) -> dict[str, Any] | None:
        if self.flagged is None:
            return None
        return {**self.flagged.record(self.excluded), "replacements": (
            "drawn: each excluded candidate was replaced by the next unflagged one of the "
            "same seeded draw (files) or the next sample index of the same seed (model)")}


def case_ids(count: int) -> list[str]:
    """Distinct ids of one length and alphabet from the operating system's randomness,
    sorted, so that their order says nothing either."""
    ids: set[str] = set()
    while len(ids) < count:
        ids.add("".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH)))
    return sorted(ids)


def secret_layout(n_items: int) -> tuple[list[str], list[int]]:
    """(ids, assignment): fresh ids, and for each item (scored first, then practice) the
    index of the id it gets. Both unguessable; kept only in the key."""
    assignment = list(range(n_items))
    secrets.SystemRandom().shuffle(assignment)
    return case_ids(n_items), assignment


MAX_LAYOUT_DRAWS = 100


def _unlucky_free_layout(truths: list[str], n_practice: int) -> tuple[list[str], list[str]]:
    """(scored ids, practice ids) from :func:`secret_layout`, drawn again while the ids or
    their order would separate the classes by chance (the leak audit would refuse about one
    build in a hundred otherwise): see :func:`~cxrgan_desktop.study.leak_audit.
    layout_separates`."""
    synthetic = np.array([truth == "synthetic" for truth in truths])
    for _ in range(MAX_LAYOUT_DRAWS):
        ids, assignment = secret_layout(len(truths) + n_practice)
        scored = [ids[i] for i in assignment[:len(truths)]]
        if layout_separates(scored, synthetic) is None:
            break
    return scored, [ids[i] for i in assignment[len(truths):]]


def _lco_labels(image: Path) -> list[str]:
    """The findings an LCO archive requested present for this image (its record beside it)."""
    record = image.with_suffix(".json")
    if not record.is_file():
        return []
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        return sorted(data["target"]["present"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _from_files(inputs: list[str], files: list[Path], count: int, rng: np.random.Generator,
                settings: StudySettings, skipped: list[str], cancel: threading.Event | None,
                exclusion: _Exclusion | None = None) -> Iterator[Prepared]:
    """``count`` images drawn (by the seeded ``rng``) from ``files``, the listing of
    ``inputs``; unreadable ones are listed in ``skipped`` and others drawn instead, and so
    are those ``exclusion`` keeps out. The permutation is over every listed file, so the
    draw is the one made without an audit, with the flagged files passed over."""
    order = rng.permutation(len(files))
    made = 0
    for index in order:
        if made == count:
            return
        check_cancel(cancel)
        path = files[index]
        if exclusion is not None and exclusion.keeps_out(str(path), path, None):
            continue
        try:
            loaded = read_image(path)
        except ImageReadError as error:
            skipped.append(str(error))
            continue
        pixels = loaded.pixels
        if exclusion is not None and exclusion.keeps_out(
                str(path), None, pixels, path if loaded.file_format == "DICOM" else None):
            continue
        made += 1
        yield Prepared(prepare_case(pixels, settings.image_size, settings.bit_depth),
                       str(path), _lco_labels(path), list(pixels.shape))
    if made < count:
        where = ", ".join(inputs)
        if exclusion is not None and exclusion.flagged is not None:
            raise ValueError(exclusion.shortage(where, made, count))
        raise ValueError(f"{where}: only {made} readable images, the study asks "
                         f"for {count}")


def _from_model(model_name: str, count: int, seed: int, settings: StudySettings,
                device: str, cancel: threading.Event | None,
                exclusion: _Exclusion | None = None,
                truncation: float = 1.0) -> Iterator[Prepared]:
    """Samples 0, 1, 2 ... of ``seed``; a sample ``exclusion`` keeps out is replaced by the
    next index (sample ``i`` depends only on the seed and ``i``, so the draw stays fixed).
    A truncated sample's source names its psi (``model:NAME#seedS/I psi=0.7``): the seed
    and index alone would make another image."""
    from cxrgan_desktop.engine.checkpoints import load_generator
    from cxrgan_desktop.engine.render import Renderer, latents_for_seed
    from cxrgan_desktop.store import zoo

    model = load_generator(zoo.resolve_model(model_name))
    renderer = Renderer(model, device, truncation=truncation)
    psi = "" if truncation == 1.0 else f" psi={truncation:g}"
    # a model whose samples keep landing on flagged images is not fit for the study: give up
    # after as many exclusions as the count asked or the audit's flagged images, whichever
    # is larger, rather than sampling for ever
    limit = 0 if exclusion is None or exclusion.flagged is None else max(
        count, len(exclusion.flagged.pixel_hashes))
    made, start, batch_size = 0, 0, 4
    while made < count:
        check_cancel(cancel)
        batch = min(batch_size, count - made)
        indices = range(start, start + batch)
        images = renderer.render(latents_for_seed(seed, batch, renderer.latent_size,
                                                  start=start), indices=indices, seed=seed)
        start += batch
        for index, image in zip(indices, images[:, 0].numpy(), strict=True):
            source = f"model:{model.name}#seed{seed}/{index}{psi}"
            if exclusion is not None and exclusion.keeps_out(source, None, image):
                if len(exclusion.excluded) > limit:
                    raise ValueError(
                        f"model {model.name}, seed {seed}: {len(exclusion.excluded)} of its "
                        f"first {start} samples are flagged by the memorisation audit "
                        f"{exclusion.audit} and were left out; {made} of the "
                        f"{count} asked for are drawn. A model that keeps reproducing "
                        "flagged images is not fit for a study")
                continue
            made += 1
            yield Prepared(prepare_case(image, settings.image_size, settings.bit_depth),
                           source, [], list(image.shape))


def shared_sources(real: list[Path], synthetic: list[Path]) -> list[tuple[Path, Path]]:
    """Pairs (real, synthetic) among two file listings that are one image: the same file
    reached twice, or two byte-identical files. Such a case would be in the key under both
    truths."""
    real_files, synthetic_files = _sized(real), _sized(synthetic)
    by_size: dict[int, list[Path]] = {}
    for path, size in real_files:
        by_size.setdefault(size, []).append(path)
    resolved = {path.resolve(): path for path, _ in real_files}
    digests: dict[Path, str | None] = {}

    def digest(path: Path) -> str | None:
        if path not in digests:
            try:
                digests[path] = sha256_file(path)
            except OSError:  # unreadable: the read that follows lists it with its reason
                digests[path] = None
        return digests[path]

    pairs = []
    for path, size in synthetic_files:
        if path.resolve() in resolved:
            pairs.append((resolved[path.resolve()], path))
            continue
        for twin in by_size.get(size, []):
            if digest(path) is not None and digest(twin) == digest(path):
                pairs.append((twin, path))
                break
    return pairs


def _sized(files: list[Path]) -> list[tuple[Path, int]]:
    """Regular files with their sizes; the rest (gone, a pipe) cannot be one image twice
    and are reported when they are read."""
    sized = []
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            sized.append((path, info.st_size))
    return sized


def check_sources_exist(plan: StudyPlan) -> None:
    """Before anything slow: every named source must exist (a typo is one clear line)."""
    missing = missing_inputs([*plan.real, *plan.synthetic])
    if missing:
        raise ValueError(f"no such file or folder: {', '.join(missing)}")


def _refuse_shared_sources(real: list[Path], synthetic: list[Path]) -> None:
    pairs = shared_sources(real, synthetic)
    if pairs:
        real, synthetic = pairs[0]
        raise ValueError(f"{len(pairs)} image(s) are among both the real and the synthetic "
                         f"sources (for example {real} and {synthetic}); a case cannot be "
                         "both. Choose separate folders.")


def _gather(plan: StudyPlan, truth: str, files: list[Path], count: int,
            rng: np.random.Generator, skipped: list[str], progress: ProgressFn,
            cancel: threading.Event | None, exclusion: _Exclusion | None = None
            ) -> list[Prepared]:
    if truth == "real":
        source = _from_files(plan.real, files, count, rng, plan.settings, skipped, cancel)
    elif plan.model:
        source = _from_model(plan.model, count, plan.seed, plan.settings, plan.device, cancel,
                             exclusion, plan.truncation)
    else:
        source = _from_files(plan.synthetic, files, count, rng, plan.settings, skipped,
                             cancel, exclusion)
    out = []
    for item in source:
        out.append(item)
        progress(len(out) / count, f"{truth}: {len(out)} of {count} images prepared")
    return out


def build_study(plan: StudyPlan, out_dir: str | Path, name: str = "study",
                progress: ProgressFn = no_progress,
                cancel: threading.Event | None = None, force: bool = False) -> BuildResult:
    """Write ``<name>.cxrstudy`` (for readers) and ``<name>.key.json`` (for the organiser
    only) into ``out_dir`` once the package passes the leak audit. A failing audit raises
    :class:`AuditFailed` and leaves no package, unless ``force``. A memorisation audit that
    cannot be used (``plan.exclude_flagged``) raises
    :class:`~cxrgan_desktop.tasks.audit_file.AuditFileError` before anything is written."""
    out = Path(out_dir)
    rng = np.random.default_rng([plan.seed, 0x5175])  # chooses source images only
    skipped: list[str] = []
    progress(0.0, "checking the sources")
    check_sources_exist(plan)
    exclusion = _Exclusion(read_flagged(plan.exclude_flagged) if plan.exclude_flagged
                           else None)
    real_files = image_files(plan.real)  # each folder is listed once, for every use below
    synthetic_files = image_files(plan.synthetic) if plan.synthetic else []
    if plan.synthetic:
        _refuse_shared_sources(real_files, synthetic_files)
    n_practice = plan.practice
    real = _gather(plan, "real", real_files, plan.n_real + n_practice, rng, skipped,
                   sub_progress(progress, 0.0, 0.45), cancel)
    synthetic = _gather(plan, "synthetic", synthetic_files, plan.n_synthetic + n_practice,
                        rng, skipped, sub_progress(progress, 0.45, 0.9), cancel, exclusion)
    practice_items = [("real", p) for p in real[plan.n_real:]] + \
        [("synthetic", p) for p in synthetic[plan.n_synthetic:]]
    scored = [("real", p) for p in real[:plan.n_real]] + \
        [("synthetic", p) for p in synthetic[:plan.n_synthetic]]
    scored_ids, practice_ids = _unlucky_free_layout([truth for truth, _ in scored],
                                                    len(practice_items))
    practice_order = list(range(len(practice_items)))
    secrets.SystemRandom().shuffle(practice_order)
    study_id = secrets.token_hex(8)
    check_cancel(cancel)
    progress(0.9, "writing the package")
    package_path = out / f"{name}{SUFFIX}"
    unaudited = out / f".{name}{SUFFIX}.unaudited"
    try:
        write_package(unaudited, study_id, plan.settings,
                      {cid: item.levels for cid, (_, item) in zip(scored_ids, scored,
                                                                   strict=True)},
                      [(practice_ids[i], practice_items[i][0], practice_items[i][1].levels)
                       for i in practice_order])
        built = _plan_record(plan)
        # candidate files per folder source, for the audit's replay of seeded draws
        built["source_files"] = [len(real_files)] + ([len(synthetic_files)]
                                                     if plan.synthetic else [])
        # the key only: a reader must not learn that an audit was used, nor what it left out
        built["exclude_flagged"] = exclusion.record()
        key = StudyKey(
            study_id=study_id, package_sha256=sha256_file(unaudited), seed=plan.seed,
            cases={cid: KeyCase(truth, item.source, item.labels, item.native_size)
                   for cid, (truth, item) in zip(scored_ids, scored, strict=True)},
            built=built)
        progress(0.95, "auditing the package for leaks")
        report = audit_package(unaudited, key)
        if not report.passed and not force:
            raise AuditFailed(report)
        key_path = out / f"{name}.key.json"
        write_key(key_path, key)
        os.replace(unaudited, package_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            unaudited.unlink()
    progress(1.0, "audit passed" if report.passed else "audit FAILED (package forced)")
    return BuildResult(package_path, key_path, report, skipped, exclusion.excluded,
                       exclusion.record())


def _plan_record(plan: StudyPlan) -> dict[str, Any]:
    record = asdict(plan)
    record["settings"] = plan.settings.to_dict()
    record["built"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    from cxrgan_desktop import __version__

    record["software"] = f"cxrgan-desktop {__version__}"
    return record
