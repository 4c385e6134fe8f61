"""The leak audit: can anything but the pixels' content tell real cases from synthetic?

Run on every package the builder writes, and on demand (``cxrgan study audit``). With the key
in hand it checks what a reader could see without looking at the anatomy: the entry names,
their sizes and compressed sizes, the image dimensions and dtype, the file headers and
archive metadata, the timestamps, the order, the pixel statistics that betray a pipeline
rather than a patient (number of grey levels used, extremes, clipped fractions), and whether
replaying seeded draws for any of a range of seeds predicts the truth
(:mod:`cxrgan_desktop.study.seed_replay`).

Exact properties (sizes, headers, timestamps) must be identical for every case. Orders and
per-image statistics are compared between the classes with a Mann-Whitney test; a check
fails when the classes separate clearly (p < 0.001 and AUC outside [0.2, 0.8]), which a
random assignment essentially never does. Statistics the pipeline fixes (grey levels used,
extremes) block the study; the fractions of pixels at the extremes depend on content too
(flat borders), so a separation there is reported as a note for the organiser to judge.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import mannwhitneyu

from cxrgan_desktop.core.fileio import sha256_file
from cxrgan_desktop.study import seed_replay
from cxrgan_desktop.study.design import is_case_id
from cxrgan_desktop.study.key import StudyKey
from cxrgan_desktop.study.package import CASE_DIR, FIXED_TIME, PRACTICE_DIR

P_LIMIT, AUC_MARGIN = 1e-3, 0.3


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    blocking: bool = True  # False: worth a look, but may be content rather than a leak


@dataclass
class AuditReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.blocking_failures()

    def failures(self) -> list[Check]:
        """Every check that did not pass, blocking or not."""
        return [c for c in self.checks if not c.passed]

    def blocking_failures(self) -> list[Check]:
        """The checks that did not pass and stop the study (notes left out)."""
        return [c for c in self.failures() if c.blocking]

    def text(self) -> str:
        lines = [f"{'PASS' if c.passed else 'FAIL' if c.blocking else 'NOTE'}  {c.name}: "
                 f"{c.detail}" for c in self.checks]
        lines.append("leak audit " + ("passed" if self.passed else "FAILED"))
        return "\n".join(lines)


def separation(values: np.ndarray, synthetic: np.ndarray) -> tuple[float, float]:
    """(AUC, two-sided p) of ``values`` telling synthetic from real; (0.5, 1) if constant."""
    a, b = values[synthetic], values[~synthetic]
    if len(a) == 0 or len(b) == 0 or np.all(values == values[0]):
        return 0.5, 1.0
    result = mannwhitneyu(a, b, alternative="two-sided")
    return float(result.statistic / (len(a) * len(b))), float(result.pvalue)


def _separates(auc: float, p: float) -> bool:
    return p < P_LIMIT and abs(auc - 0.5) > AUC_MARGIN


def _same(name: str, values: list, what: str) -> Check:
    distinct = sorted({repr(v) for v in values})
    if len(distinct) == 1:
        return Check(name, True, f"every case has the same {what}")
    return Check(name, False, f"{len(distinct)} different {what}s: {', '.join(distinct[:4])}")


# Statistics fixed by the pipeline (a difference is a leak) and statistics of content (a
# difference may be what the images look like: real radiographs have flat burned-in borders
# that a generator renders as texture), reported as notes.
CONTENT_STATISTICS = {"fraction at minimum", "fraction at maximum", "fine detail"}
# A class whose sources are this many times smaller than the other's, and upscaled to the
# study size, is told apart by its blur: a pipeline choice, so it blocks the study.
NATIVE_SIZE_RATIO = 1.5


def _pixel_statistics(levels: np.ndarray) -> dict[str, float]:
    low, high = levels.min(), levels.max()
    return {"grey levels used": float(np.unique(levels).size), "minimum": float(low),
            "maximum": float(high), "fraction at minimum": float(np.mean(levels == low)),
            "fraction at maximum": float(np.mean(levels == high)),
            "fine detail": fine_detail(levels)}


def fine_detail(levels: np.ndarray) -> float:
    """Energy of the discrete Laplacian over the image's variance: near 0 for an image
    upscaled from far fewer pixels, larger for one with detail at the pixel scale."""
    x = levels.astype(np.float64)
    variance = x.var()
    if variance == 0 or min(x.shape) < 3:
        return 0.0
    laplacian = (4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:])
    return float(np.mean(laplacian ** 2) / variance)


def native_resolution_check(key: StudyKey, ids: list[str], synthetic: np.ndarray,
                            image_size: int) -> Check:
    """Compare the classes' source sizes (recorded in the key): images upscaled from a much
    smaller source are blurred, and the blur alone tells the classes apart."""
    sizes = [key.cases[i].native_size for i in ids]
    if any(not s for s in sizes):
        return Check("native resolution", True, "source sizes not recorded (a key made "
                     "before version 0.2)")
    sides = np.array([min(s) for s in sizes], dtype=float)
    medians = {"synthetic": float(np.median(sides[synthetic])),
               "real": float(np.median(sides[~synthetic]))}
    small, large = sorted(medians, key=medians.get)
    detail = (f"median source side: real {medians['real']:.0f} px, synthetic "
              f"{medians['synthetic']:.0f} px; study size {image_size} px")
    if medians[small] < image_size and medians[large] >= NATIVE_SIZE_RATIO * medians[small]:
        return Check("native resolution", False, f"{detail}: the {small} images are upscaled "
                     f"{image_size / medians[small]:.1f}x and the {large} ones "
                     f"{max(image_size / medians[large], 1):.1f}x, so blur tells them "
                     f"apart; use a study size of at most {medians[small]:.0f} px or sources "
                     "of matching resolution")
    return Check("native resolution", True, detail)


def audit_package(path: str | Path, key: StudyKey) -> AuditReport:
    report = AuditReport()
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        manifest = json.loads(archive.read("study.json"))
        cases = [i for i in infos if i.filename.startswith(f"{CASE_DIR}/")]
        ids = [Path(i.filename).stem for i in cases]
        unknown = sorted(set(ids) ^ set(key.cases))
        if unknown:
            report.checks.append(Check("key", False, f"package and key disagree on "
                                       f"{len(unknown)} case(s), e.g. {unknown[0]}"))
            return report
        synthetic = np.array([key.truth(i) == "synthetic" for i in ids])
        report.checks += _name_checks(ids, key, infos)
        report.checks.append(_id_character_check(ids, synthetic))
        report.checks += _archive_checks(cases, infos)
        report.checks.append(_order_check(ids, manifest, synthetic))
        report.checks.append(replay_check(key, [p["id"] for p in manifest.get("practice", [])]))
        headers, statistics = [], []
        shapes = []
        for info in cases:
            data = archive.read(info)
            headers.append(data[:_npy_header_length(data)])
            levels = np.load(io.BytesIO(data), allow_pickle=False)
            shapes.append((levels.shape, str(levels.dtype)))
            statistics.append(_pixel_statistics(levels))
    report.checks.append(_same("dimensions", shapes, "shape and dtype"))
    report.checks.append(native_resolution_check(key, ids, synthetic, int(shapes[0][0][0])))
    report.checks.append(_same("file headers", headers, "header bytes"))
    for name in statistics[0]:
        values = np.array([s[name] for s in statistics])
        auc, p = separation(values, synthetic)
        content = name in CONTENT_STATISTICS
        detail = f"AUC {auc:.2f} for synthetic, p = {p:.2g}"
        if content and _separates(auc, p):
            detail += ("; visible in the pixels, so not blocking, but check that the sources "
                       "were not clipped or padded differently")
        report.checks.append(Check(f"pixels: {name}", not _separates(auc, p), detail,
                                   blocking=not content))
    return report


def replay_check(key: StudyKey, practice_ids: list[str],
                 seeds: range = seed_replay.SEEDS_TRIED) -> Check:
    """Replay the old builder's seeded draws for every seed in ``seeds`` and the key's own,
    with the source folders' file counts as recorded, and with none drawn first."""
    counts = [int(c) for c in key.built.get("source_files", [])]
    hypotheses = {tuple(counts), tuple(counts[:1]), ()}
    truth = {case: key.truth(case) for case in key.cases}
    findings = seed_replay.replay_attack(truth, practice_ids, sorted(hypotheses),
                                         sorted({*seeds, key.seed}))
    passed, detail = seed_replay.judge(findings)
    return Check("seed replay", passed, detail)


def hash_check(path: str | Path, key: StudyKey) -> Check:
    """The key names its package by SHA-256: a package changed since the build (or another
    study's) is not the one the key describes."""
    actual = sha256_file(path)
    if actual == key.package_sha256:
        return Check("package hash", True, "the package is the one this key was made with")
    return Check("package hash", False, f"the package's SHA-256 is {actual}, the key's is "
                 f"{key.package_sha256}: changed since the build, or another study's package")


def _npy_header_length(data: bytes) -> int:
    """Bytes up to the array data: magic, version, header length field, header."""
    major = data[6]
    if major == 1:
        return 10 + int.from_bytes(data[8:10], "little")
    return 12 + int.from_bytes(data[8:12], "little")


def _name_checks(ids: list[str], key: StudyKey, infos: list[zipfile.ZipInfo]) -> list[Check]:
    checks = []
    odd = [i for i in ids if not is_case_id(i)]
    checks.append(Check("case names", not odd,
                        "every id is 8 random letters and digits of one alphabet" if not odd else
                        f"{len(odd)} id(s) of another form, e.g. {odd[0]!r}"))
    stems = {Path(c.source.split("#")[0]).stem.lower() for c in key.cases.values()}
    stems = {s for s in stems if len(s) >= 4}
    named = [i.filename for i in infos if any(s in i.filename.lower() for s in stems)]
    checks.append(Check("source names", not named,
                        "no entry name contains a source file's name" if not named else
                        f"{len(named)} entry name(s) contain source names, e.g. {named[0]}"))
    allowed = re.compile(rf"^(study\.json|({CASE_DIR}|{PRACTICE_DIR})/[^/]+\.npy)$")
    extra = [i.filename for i in infos if not allowed.match(i.filename)]
    checks.append(Check("extra entries", not extra,
                        "only study.json, cases/ and practice/" if not extra else
                        f"unexpected entries: {', '.join(extra[:4])}"))
    return checks


def layout_separates(ids: list[str], synthetic: np.ndarray) -> str | None:
    """Why the ids and their package order (sorted) would fail the audit's id and order
    checks by chance, or None.

    Ids and the assignment come from the operating system's randomness, so with p < 0.001 on
    each of the id's characters and the order, about one build in a hundred would separate
    the classes by pure chance and be refused. The builder draws again until this returns
    None: the checks then fail only for a systematic leak, never for an unlucky draw, and the
    redraw depends on nothing a reader can know.
    """
    order = np.argsort(ids, kind="stable")
    ordered, flags = [ids[i] for i in order], np.asarray(synthetic)[order]
    for check in (_id_character_check(ordered, flags),
                  _order_check(ordered, {"cases": ordered}, flags)):
        if not check.passed:
            return check.detail
    return None


def _id_character_check(ids: list[str], synthetic: np.ndarray) -> Check:
    """No character position of the ids (say, a first letter per class) separates them."""
    for position in range(min(len(i) for i in ids)):
        codes = np.array([ord(i[position]) for i in ids], dtype=float)
        auc, p = separation(codes, synthetic)
        if _separates(auc, p):
            return Check("case name characters", False, f"character {position + 1} of the ids "
                         f"separates the classes (AUC {auc:.2f}, p = {p:.2g})")
    return Check("case name characters", True, "no character position predicts the class")


def _archive_checks(cases: list[zipfile.ZipInfo], infos: list[zipfile.ZipInfo]) -> list[Check]:
    checks = [
        _same("file sizes", [i.file_size for i in cases], "size"),
        _same("compressed sizes", [(i.compress_type, i.compress_size) for i in cases],
              "compression and compressed size"),
        _same("timestamps", [i.date_time for i in infos], "timestamp"),
        _same("archive metadata",
              [(i.create_system, i.external_attr, i.extra, i.comment, i.flag_bits)
               for i in cases], "attribute set"),
    ]
    stamped = sorted({i.date_time for i in infos} - {FIXED_TIME})
    if stamped:
        checks.append(Check("build time", False, f"entries carry real times, e.g. "
                            f"{stamped[0]}: when each was made is visible"))
    return checks


def _order_check(ids: list[str], manifest: dict, synthetic: np.ndarray) -> Check:
    if list(manifest.get("cases", [])) != ids:
        return Check("order", False, "study.json lists the cases in another order than the "
                     "archive: two orders to leak through")
    positions = np.arange(len(ids), dtype=float)
    auc, p = separation(positions, synthetic)
    if _separates(auc, p):
        return Check("order", False, f"synthetic cases sit {'late' if auc > 0.5 else 'early'}"
                     f" in the package (AUC {auc:.2f}, p = {p:.2g})")
    return Check("order", True, f"position does not separate the classes (AUC {auc:.2f})")
