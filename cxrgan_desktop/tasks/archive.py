"""The LCO archive: a folder of labelled synthetic radiographs, built by LCO, resumable.

Shared by ``cxrgan lco`` (one target, N images), ``cxrgan archive`` (a label distribution,
e.g. ChestX-ray14's own prevalence and co-occurrence) and the GUI's LCO panel. Item ``k`` is
a function of the plan (its target), the seed and ``k``; see :mod:`cxrgan_desktop.engine.lco`.

Folder layout::

    archive.json          what was asked (plan, model, classifier, judge, settings, series):
                          written first; a resume must ask for the same
    lco_00000.png|.dcm    an accepted image (16-bit PNG or synthetic DICOM)
    lco_00000.json        the item's record, written after its image: z, seed, attempt,
                          target, classifier and judge probabilities, steps, image change
                          (a failed item has a record and no image)
    Data_Entry_lco.csv    accepted images in the ChestX-ray14 label layout
    manifest.json         counts, acceptance and judge agreement rates, timings

Truncation (psi, :mod:`cxrgan_desktop.engine.truncation`) is part of what was asked: it is in
archive.json, in every item record and in the manifest. An archive made before truncation
existed names none; it was made at psi = 1, and continues as such.

Resume: items are optimised in fixed chunks (aligned groups of ``4 x batch size``). A chunk
whose records are all present is skipped; an unfinished chunk is run again whole and only
its missing items are written. Running the whole chunk keeps its batches composed as in an
uninterrupted run, so a resumed archive holds the same images (on a deterministic device).

``Finding Labels`` in the CSV lists the findings requested present and reached. With a
distribution plan every other label is requested absent, so a row is as complete as a
dataset row; with a single target, labels left "don't care" were not controlled (the
manifest lists the controlled labels).

The folder is locked while a job writes it; a rerun removes the temporary files a killed
one left. The CSV and manifest are rebuilt from the item records and written together (a
full disk changes neither), so after any kill the same command finishes the archive with
files, CSV and manifest agreeing.

Leaving out images a memorisation audit flagged (``exclude``): an accepted item whose image's
pixels the audit flagged is *excluded*. Its image file is deleted, not moved aside: an
archive is made to be handed on, and an ``excluded/`` folder inside it would travel with every
copy, carrying exactly the images judged too close to a training patient. Nothing is lost for
the organiser: the item's record keeps its latent and seed (the image can be rendered again
for inspection) and the audit folder keeps the pair side by side. The record says
``excluded_by_audit`` (which audit, the image's pixel hash), the CSV leaves the item out, and
the manifest lists each audit with what it excluded. Excluded items are settled: a resume,
with or without the audit, keeps them out and does not replace them (a replacement would not
have been audited), so the archive holds fewer images than asked, as the manifest says. The
record is rewritten first, then the CSV and manifest, then the image is deleted, so after a
kill the CSV never names a missing file and the next run finishes the deletion.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import atomic_write_json, atomic_write_many
from cxrgan_desktop.core.jobs import Cancelled, ProgressFn, check_cancel, no_progress, sub_progress
from cxrgan_desktop.core.output_lock import OutputFolderError, is_lock_or_stale, output_lock
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.classifier.files import LoadedClassifier
from cxrgan_desktop.engine.lco import (
    LCORequest,
    LCOResult,
    LCOSettings,
    LCOTarget,
    MonotoneProgress,
    Snapshot,
    judge,
    optimise,
)
from cxrgan_desktop.engine.lco_advice import LCOAdvice, Outcome, advise
from cxrgan_desktop.engine.truncation import check_psi, psi_of
from cxrgan_desktop.engine.truncation import record as truncation_record
from cxrgan_desktop.imaging.dicom_export import export_dicom
from cxrgan_desktop.imaging.pixel_hash import pixel_sha256
from cxrgan_desktop.imaging.png16 import write_png16
from cxrgan_desktop.imaging.synthetic_provenance import (
    LCOInfo,
    SyntheticImageInfo,
    SyntheticSeries,
    new_synthetic_series,
    provenance,
)
from cxrgan_desktop.labels.chestxray14 import DataEntry, data_entry_csv_text
from cxrgan_desktop.labels.distribution import LabelDistribution
from cxrgan_desktop.tasks.audit_file import FlaggedImages
from cxrgan_desktop.tasks.generate import stored_image

log = logging.getLogger(__name__)

ARCHIVE_FORMAT = "cxrgan-lco-archive/1"
PLAN_NAME, CSV_NAME, MANIFEST_NAME = "archive.json", "Data_Entry_lco.csv", "manifest.json"
IMAGE_SUFFIXES = {"png16": ".png", "dicom": ".dcm"}
PATIENT_ID_OFFSET = 700_000  # synthetic ids: above ChestX-ray14's (<= 30805), below phantoms'
CHUNK_BATCHES = 4
_LABEL_TAG = 0x1AB  # keys the label draw of item k apart from its latents ([seed, k, attempt])
EXCLUDED = "excluded_by_audit"  # an item record's key: the audit that excluded its image
NO_REPLACEMENTS = ("none: an excluded item is not replaced by a new image (a replacement "
                   "would not have been audited), so the archive holds fewer images than "
                   "requested")


@dataclass(frozen=True)
class ArchivePlan:
    """The target of every item, the seed, and a line saying where the targets came from."""

    targets: tuple[LCOTarget, ...]
    seed: int
    description: str

    def __len__(self) -> int:
        return len(self.targets)

    def to_json(self) -> dict[str, Any]:
        unique = list(dict.fromkeys(self.targets))
        return {"seed": self.seed, "n": len(self.targets), "description": self.description,
                "targets": [t.to_json() for t in unique],
                "item_targets": [unique.index(t) for t in self.targets]}


def repeated_target(target: LCOTarget, n: int, seed: int) -> ArchivePlan:
    """``n`` items all aiming at ``target`` (``cxrgan lco``)."""
    if n < 1:
        raise ValueError(f"the number of images must be at least 1, got {n}")
    return ArchivePlan((target,) * n, seed, f"{n} x {target.describe()}")


def distribution_plan(distribution: LabelDistribution, n: int, seed: int,
                      labels: Sequence[str], threshold: float = 0.5,
                      source: str = "", absent_threshold: float | None = None) -> ArchivePlan:
    """``n`` items whose label sets are drawn from ``distribution``; each item asks for its
    drawn findings present (``threshold``) and every other of ``labels`` absent
    (``absent_threshold``, default ``threshold``): a complete row."""
    if n < 1:
        raise ValueError(f"the number of images must be at least 1, got {n}")
    targets = []
    for k in range(n):
        drawn = distribution.sample(np.random.default_rng([seed, k, _LABEL_TAG]))
        present = tuple(name for name in labels if name in drawn)
        absent = tuple(name for name in labels if name not in drawn)
        targets.append(LCOTarget(present, absent, threshold,
                                 absent_threshold=absent_threshold))
    what = source or distribution.source or "a label distribution"
    return ArchivePlan(tuple(targets), seed, f"{n} images with the label distribution of {what}")


@dataclass
class ArchiveSummary:
    out_dir: Path
    requested: int
    accepted: int = 0  # accepted by LCO and in the archive
    failed: int = 0
    excluded: int = 0  # accepted by LCO, then excluded by a memorisation audit
    judge_agreement: float | None = None
    cancelled: bool = False
    new_results: list[LCOResult] = field(default_factory=list)
    advice: LCOAdvice | None = None  # over every item in the folder (see lco_advice)

    @property
    def done(self) -> int:
        return self.accepted + self.failed + self.excluded


def item_stem(k: int) -> str:
    return f"lco_{k:05d}"


def _record(result: LCOResult, labels: Sequence[str], judge_labels: Sequence[str] | None,
            file: str | None, base: dict[str, Any], truncation: float = 1.0
            ) -> dict[str, Any]:
    def named(values: np.ndarray | None, names: Sequence[str] | None) -> dict[str, float] | None:
        if values is None or names is None:
            return None
        return {n: round(float(p), 6) for n, p in zip(names, values, strict=True)}

    request = result.request
    return {**base, "lco": {
        "index": request.index, "seed": request.seed, "attempt": result.attempts - 1,
        "file": file, "success": result.success, "target": request.target.to_json(),
        "target_text": request.target.describe(), "steps": result.steps,
        "attempts": result.attempts, "classifier_evaluations": result.evaluations,
        "probabilities": named(result.probabilities, labels),
        "start_probabilities": named(result.start_probabilities, labels),
        "best_probabilities": named(result.best_probabilities, labels),
        "judge_probabilities": named(result.judge_probabilities, judge_labels),
        "judge_agrees": result.judge_agrees,
        "image_change": round(result.image_change, 6),
        "z_norm_ratio": round(result.z_norm_ratio, 6), "truncation": truncation,
        "z": [float(x) for x in result.z], "z_start": [float(x) for x in result.z_start]}}


class _Archive:
    """The folder: what was asked, which items are done, and writing them.

    ``records`` (item -> its record) is read from disk once when the folder opens and kept
    up to date by :meth:`write`, so neither the resume nor each summary rereads every file.
    """

    def __init__(self, out_dir: Path, header: dict[str, Any], image_format: str,
                 series: SyntheticSeries) -> None:
        self.out = out_dir
        self.header = header
        self.image_format = image_format
        self.series = series
        self.records: dict[int, dict[str, Any]] = {}

    def load_records(self, count: int) -> None:
        self.records = {k: r for k in range(count) if (r := self.read_record(k)) is not None}

    @classmethod
    def open(cls, out_dir: Path, header: dict[str, Any], image_format: str,
             model: LoadedGenerator) -> _Archive:
        plan_file = out_dir / PLAN_NAME
        if plan_file.exists():
            try:
                old = json.loads(plan_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise OutputFolderError(f"{plan_file}: unreadable archive description ({error})"
                                 ) from error
            mine = {k: v for k, v in old.items() if k != "series"}
            with contextlib.suppress(ValueError):  # unusable: compared as it is, and named
                mine["truncation"] = psi_of(mine.get("truncation"))  # none recorded: 1
            if mine != header:
                changed = sorted(k for k in set(mine) | set(header)
                                 if mine.get(k) != header.get(k))
                raise OutputFolderError(
                    f"{out_dir} holds an archive made with other settings (they differ in: "
                    f"{', '.join(changed)}); choose another output folder, or repeat the "
                    "original command to continue it")
            series = SyntheticSeries.from_dict(old["series"])
            return cls(out_dir, header, image_format, series)
        if any(not is_lock_or_stale(p.name) for p in out_dir.iterdir()):
            raise OutputFolderError(f"{out_dir} is not empty and holds no LCO archive; "
                                    "choose an empty or new folder")
        series = new_synthetic_series(model.name, model.sha256,
                                      series_description=f"SYNTHETIC LCO, {model.name}")
        atomic_write_json(plan_file, {**header, "series": series.to_dict()})
        return cls(out_dir, header, image_format, series)

    def record_path(self, k: int) -> Path:
        return self.out / f"{item_stem(k)}.json"

    def image_path(self, k: int) -> Path:
        return self.out / f"{item_stem(k)}{IMAGE_SUFFIXES[self.image_format]}"

    def read_record(self, k: int) -> dict[str, Any] | None:
        path = self.record_path(k)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))["lco"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if record.get("success") and not record.get(EXCLUDED) \
                and not self.image_path(k).exists():
            return None
        return record

    def write(self, result: LCOResult, info_lco: LCOInfo, labels: Sequence[str],
              judge_labels: Sequence[str] | None,
              excluded: dict[str, Any] | None = None) -> Path | None:
        """Write item ``result.index``: its image (unless ``excluded``, an audit's note on
        why it is left out) and then its record."""
        k = result.index
        info = SyntheticImageInfo(k, seed=result.request.seed, lco=info_lco)
        image_file = None
        if result.success and excluded is None:
            image_file = self.image_path(k)
            if self.image_format == "dicom":
                export_dicom(image_file, result.image, self.series, info)
            else:
                write_png16(image_file, result.image)
        if image_file is None:  # a failed retry must not leave an earlier attempt's image
            self.image_path(k).unlink(missing_ok=True)
        base = provenance(self.series, info) if image_file else {"synthetic": True}
        record = _record(result, labels, judge_labels,
                         image_file.name if image_file else None, base,
                         self.header.get("truncation", 1.0))
        if excluded is not None:
            record["lco"][EXCLUDED] = excluded
        atomic_write_json(self.record_path(k), record)
        self.records[k] = record["lco"]
        return image_file

    def exclude(self, k: int, note: dict[str, Any]) -> Path:
        """Mark item ``k``'s record excluded (its image is deleted by the caller once the
        CSV no longer lists it); returns the image to delete."""
        path = self.record_path(k)
        record = json.loads(path.read_text(encoding="utf-8"))
        record["lco"][EXCLUDED] = {**note, "file": record["lco"]["file"]}
        record["lco"]["file"] = None
        atomic_write_json(path, record)
        self.records[k] = record["lco"]
        return self.image_path(k)


def _audit_note(flagged: FlaggedImages, digest: str) -> dict[str, Any]:
    """What an item record says about the audit that excluded it (enough to list the audit
    in the manifest on every later run)."""
    about = {k: v for k, v in flagged.record([]).items()
             if k not in ("excluded", "excluded_files")}
    return {**about, "pixel_sha256": digest}


def _screen(archive: _Archive, flagged: FlaggedImages | None,
            cancel: threading.Event | None) -> list[Path]:
    """Exclude the accepted items already in the folder whose images ``flagged`` holds;
    returns the image files to delete (also those a killed run left of excluded items)."""
    doomed = []
    for k, record in sorted(archive.records.items()):
        check_cancel(cancel)
        if record.get(EXCLUDED):
            if archive.image_path(k).exists():
                doomed.append(archive.image_path(k))
            continue
        if flagged is None or not record.get("success"):
            continue
        try:
            digest = pixel_sha256(stored_image(archive.image_path(k)))
        except (OSError, ValueError) as error:
            raise OutputFolderError(f"{archive.image_path(k)}: cannot be read to check it "
                                    f"against the audit ({error}); delete it and its record "
                                    "and run again to render it anew") from error
        if flagged.is_flagged(pixel_hash=digest):
            doomed.append(archive.exclude(k, _audit_note(flagged, digest)))
    return doomed


def lco_info(result: LCOResult, loaded: LoadedClassifier, labels: Sequence[str],
             truncation: float = 1.0) -> LCOInfo:
    """What the image's provenance (DICOM Image Comments, sidecar) says about its LCO
    (truncation only when there was some, so that psi = 1 writes the files it wrote before
    truncation existed)."""
    target = result.request.target
    probabilities = {n: float(result.probabilities[labels.index(n)]) for n in target.specified}
    details: dict[str, Any] = {"steps": result.steps, "attempts": result.attempts,
                               "image_change": round(result.image_change, 6)}
    if result.judge_agrees is not None:
        details["judge_agrees"] = result.judge_agrees
    if truncation != 1.0:
        details["truncation"] = truncation
    return LCOInfo(target.requested(), probabilities, loaded.name, loaded.sha256, details)


def build_archive(model: LoadedGenerator, classifier: LoadedClassifier, plan: ArchivePlan,
                  out_dir: str | Path, *, settings: LCOSettings | None = None,
                  judge_classifier: LoadedClassifier | None = None,
                  image_format: str = "png16", device: str = "cpu",
                  progress: ProgressFn = no_progress, cancel: threading.Event | None = None,
                  on_result: Callable[[LCOResult, Path | None], None] | None = None,
                  on_snapshot: Callable[[Snapshot], None] | None = None,
                  exclude: FlaggedImages | None = None,
                  truncation: float = 1.0) -> ArchiveSummary:
    """Fill ``out_dir`` with the plan's items (continuing an earlier run of the same plan).

    ``on_result(result, image_path)`` is called as each new item is written (the GUI's
    gallery; the path is None for a failed or excluded item). ``exclude``: accepted items
    whose image this memorisation audit flagged are excluded, those already in the folder
    and new ones (see the module). ``truncation``: psi, applied inside LCO's optimisation
    (1: none). Raises :class:`Cancelled` after the CSV and manifest describe what is done.
    """
    settings = settings or LCOSettings()
    truncation = check_psi(truncation)
    if image_format not in IMAGE_SUFFIXES:
        raise ValueError(f"unknown image format {image_format!r}; choose from "
                         f"{tuple(IMAGE_SUFFIXES)}")
    labels = classifier.labels
    for target in dict.fromkeys(plan.targets):
        target.check_labels(labels)
        if judge_classifier is not None:
            target.check_labels(judge_classifier.labels)
    header = {
        "format": ARCHIVE_FORMAT, "plan": plan.to_json(), "image_format": image_format,
        "model": {"name": model.name, "sha256": model.sha256, "resolution": model.resolution},
        "classifier": {"name": classifier.name, "sha256": classifier.sha256,
                       "labels": list(labels)},
        "judge": None if judge_classifier is None else {
            "name": judge_classifier.name, "sha256": judge_classifier.sha256},
        "settings": settings.to_json(),
        "truncation": truncation,
    }
    out = Path(out_dir)
    with output_lock(out, "archive"):
        return _build_locked(model, classifier, plan, out, header, settings, judge_classifier,
                             image_format, device, progress, cancel, on_result, on_snapshot,
                             exclude)


def _build_locked(model: LoadedGenerator, classifier: LoadedClassifier, plan: ArchivePlan,
                  out: Path, header: dict[str, Any], settings: LCOSettings,
                  judge_classifier: LoadedClassifier | None, image_format: str, device: str,
                  progress: ProgressFn, cancel: threading.Event | None,
                  on_result: Callable[[LCOResult, Path | None], None] | None,
                  on_snapshot: Callable[[Snapshot], None] | None,
                  exclude: FlaggedImages | None = None) -> ArchiveSummary:
    """:func:`build_archive` with the folder's lock held."""
    labels = classifier.labels
    archive = _Archive.open(out, header, image_format, model)
    archive.load_records(len(plan))
    summary = ArchiveSummary(out, len(plan))
    doomed = _screen(archive, exclude, cancel)
    if doomed:  # the CSV stops naming them before they go
        _write_summary(archive, plan, summary, labels, 0.0, exclude)
        for path in doomed:
            path.unlink(missing_ok=True)
    chunk = settings.batch_size * CHUNK_BATCHES
    chunks = [range(s, min(s + chunk, len(plan))) for s in range(0, len(plan), chunk)]
    todo = [c for c in chunks if any(k not in archive.records for k in c)]
    started = time.monotonic()
    judge_labels = None if judge_classifier is None else judge_classifier.labels
    progress = MonotoneProgress(progress)
    counts = {"settled": len(archive.records),
              "accepted": sum(bool(r["success"]) and not r.get(EXCLUDED)
                              for r in archive.records.values())}

    def status() -> str:
        return (f"{counts['settled']}/{len(plan)} samples settled, {counts['accepted']} "
                "accepted")
    try:
        for number, items in enumerate(todo):
            check_cancel(cancel)
            missing = {k for k in items if k not in archive.records}
            requests = [LCORequest(k, plan.targets[k], plan.seed) for k in items]
            slice_progress = sub_progress(lambda f, _m: progress(f, status()),
                                          number / len(todo), (number + 1) / len(todo))

            def write(result: LCOResult, missing: set[int] = missing) -> None:
                if result.index not in missing:
                    return  # already in the folder from an earlier run
                if judge_classifier is not None and result.success:
                    judge([result], judge_classifier.classifier, device)
                note = None
                if exclude is not None and result.success:
                    digest = pixel_sha256(result.image)
                    if exclude.is_flagged(pixel_hash=digest):
                        note = {**_audit_note(exclude, digest),
                                "file": archive.image_path(result.index).name}
                path = archive.write(result, lco_info(result, classifier, labels,
                                                      archive.header["truncation"]),
                                     labels, judge_labels, note)
                summary.new_results.append(result)
                counts["settled"] += 1
                counts["accepted"] += result.success and note is None
                if on_result is not None:
                    on_result(result, path)

            optimise(model, classifier.classifier, requests, settings, device=device,
                     progress=slice_progress, cancel=cancel, on_result=write,
                     on_snapshot=on_snapshot, truncation=archive.header["truncation"])
            _write_summary(archive, plan, summary, labels, time.monotonic() - started,
                           exclude)
    except Cancelled:
        summary.cancelled = True
        _write_summary(archive, plan, summary, labels, time.monotonic() - started, exclude)
        raise
    except BaseException:  # Ctrl-C, a full disk: describe what is done, if the disk lets us
        with contextlib.suppress(OSError):
            _write_summary(archive, plan, summary, labels, time.monotonic() - started,
                           exclude)
        raise
    if not todo:
        _write_summary(archive, plan, summary, labels, 0.0, exclude)
    progress(1.0, f"{summary.accepted}/{summary.requested} accepted")
    return summary


def _write_summary(archive: _Archive, plan: ArchivePlan, summary: ArchiveSummary,
                   labels: Sequence[str], seconds: float,
                   exclude: FlaggedImages | None = None) -> None:
    """Rewrite the CSV and manifest from the item records (those on disk, and new ones)."""
    records = archive.records
    excluded = [r for r in records.values() if r["success"] and r.get(EXCLUDED)]
    accepted = [r for r in records.values() if r["success"] and not r.get(EXCLUDED)]
    summary.accepted, summary.excluded = len(accepted), len(excluded)
    summary.failed = len(records) - len(accepted) - len(excluded)
    resolution = archive.header["model"]["resolution"]
    entries = [DataEntry(image_index=r["file"], findings=frozenset(r["target"]["present"]),
                         follow_up=0, patient_id=PATIENT_ID_OFFSET + r["index"], age=0,
                         gender="O", view_position="PA", width=resolution, height=resolution,
                         pixel_spacing_x=0.0, pixel_spacing_y=0.0)
               for r in sorted(accepted, key=lambda r: r["index"])]
    judged = [r["judge_agrees"] for r in accepted if r["judge_agrees"] is not None]
    summary.judge_agreement = float(np.mean(judged)) if judged else None
    controlled = sorted({n for t in plan.targets for n in t.specified}, key=list(labels).index)
    settings = archive.header["settings"]
    summary.advice = advise((Outcome.from_record(r) for r in records.values()),
                            steps=settings["steps"], restarts=settings["restarts"])
    evaluations = sum(r["classifier_evaluations"] for r in records.values())
    manifest = {
        "software": {"name": "cxrgan-desktop", "version": __version__},
        "updated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "format": ARCHIVE_FORMAT,
        "description": plan.description,
        "requested": len(plan), "finished": len(records), "accepted": len(accepted),
        "failed": summary.failed, "excluded_by_audit": len(excluded),
        "complete": len(records) == len(plan),
        # LCO's own rate: items it accepted (excluded ones too) of those finished
        "acceptance_rate": _rate(len(accepted) + len(excluded), len(records)),
        "judge_agreement": summary.judge_agreement,
        "mean_image_change": _mean([r["image_change"] for r in accepted]),
        "mean_steps": _mean([r["steps"] for r in accepted]),
        "classifier_evaluations": evaluations,
        "classifier_evaluations_per_accepted": _rate(evaluations, len(accepted)),
        "controlled_labels": controlled,
        "labels_csv": CSV_NAME,
        "seconds_this_run": round(seconds, 2),
        "image_format": archive.image_format,
        "truncation": truncation_record(archive.header.get("truncation", 1.0)),
        "advice": list(summary.advice.remarks),
    }
    if excluded or exclude is not None:
        manifest["exclude_flagged"] = _exclusion_section(excluded, exclude)
    atomic_write_many({archive.out / CSV_NAME: data_entry_csv_text(entries).encode(),
                       archive.out / MANIFEST_NAME: (json.dumps(manifest, indent=2)
                                                     + "\n").encode()})


def _exclusion_section(excluded: list[dict[str, Any]], exclude: FlaggedImages | None
                       ) -> dict[str, Any]:
    """Each audit that excluded items (and this run's, even if it excluded none), with what
    it excluded; the total; and that nothing was replaced."""
    by_audit: dict[str, dict[str, Any]] = {}
    if exclude is not None:
        by_audit[exclude.audit_sha256] = {**exclude.record([]), "excluded_items": []}
    for record in sorted(excluded, key=lambda r: r["index"]):
        note = record[EXCLUDED]
        audit = by_audit.setdefault(note.get("audit_sha256", ""), {
            **{k: v for k, v in note.items() if k not in ("pixel_sha256", "file")},
            "excluded": 0, "excluded_files": [], "excluded_items": []})
        audit["excluded"] += 1
        audit["excluded_files"].append(note.get("file"))
        audit["excluded_items"].append(record["index"])
    return {"audits": list(by_audit.values()), "excluded": len(excluded),
            "excluded_items": sorted(r["index"] for r in excluded),
            "this_run": exclude.audit_sha256 if exclude is not None else None,
            "replacements": NO_REPLACEMENTS}


def _rate(a: float, b: float) -> float | None:
    return None if b == 0 else round(a / b, 6)


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 6) if values else None
