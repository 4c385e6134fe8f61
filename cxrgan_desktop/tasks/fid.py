"""One FID (and KID) measurement between two sides, each a folder, a statistics file or a
generator: what ``cxrgan fid`` and the FID panel both run.

Every result carries the settings that produced it (network hash, resize mode, N per side,
KID subsets and seed, device), because a FID without them cannot be compared with anything.
Two sides measured with different networks or resize modes are refused rather than compared.
"""

from __future__ import annotations

import datetime
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress, sub_progress
from cxrgan_desktop.metrics.feature_cache import FeatureCache, cache_key
from cxrgan_desktop.metrics.fid_features import FEATURE_DIM, FeatureExtractor
from cxrgan_desktop.metrics.fid_settings import DEFAULT_RESIZE, RECOMMENDED_N, Preprocessing
from cxrgan_desktop.metrics.frechet import feature_statistics
from cxrgan_desktop.metrics.frechet import fid as frechet_fid
from cxrgan_desktop.metrics.inception_weights import LoadedInception, load_inception
from cxrgan_desktop.metrics.kid import (
    DEFAULT_SUBSET_SIZE,
    DEFAULT_SUBSETS,
    KIDResult,
    kernel_inception_distance,
)
from cxrgan_desktop.metrics.prdc import DEFAULT_K, PRDCResult, precision_recall_density_coverage
from cxrgan_desktop.metrics.relative_fd import (
    RelativeFD,
    patient_halves,
    patients_from_paths,
    relative_fd,
)
from cxrgan_desktop.metrics.stats_file import FeatureStats, load_stats
from cxrgan_desktop.tasks.fid_sources import FolderSource, GeneratorSource, ImageSource

SIDE_KINDS = ("folder", "stats", "model")
COMPARED_SETTINGS = ("weights_sha256", "resize", "input_size", "feature_dim")


def recorded(settings: dict[str, Any], key: str) -> Any:
    """A setting as a statistics file records it; files written before feature networks
    could be chosen hold Inception's 2048-d features without saying so."""
    return settings.get(key, FEATURE_DIM if key == "feature_dim" else None)


@dataclass(frozen=True)
class SideSpec:
    """One side of a comparison: ``kind`` folder | stats | model; a model side draws ``n``
    samples from ``seed``."""

    kind: str
    location: str
    n: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in SIDE_KINDS:
            raise ValueError(f"side kind must be one of {SIDE_KINDS}, got {self.kind!r}")
        if self.kind == "model" and (self.n is None or self.n < 2):
            raise ValueError(f"model:{self.location}: give the number of samples to draw "
                             "(--n, at least 2; 2048 or more for a comparable FID)")

    @property
    def label(self) -> str:
        if self.kind == "model":
            return f"model:{self.location} (N={self.n}, seed {self.seed})"
        return self.location


def statistics_only(*sides: SideSpec | None) -> bool:
    """Every given side is a statistics file: no feature network is needed at all."""
    return all(side.kind == "stats" for side in sides if side is not None)


def needs_inception(features: str, *sides: SideSpec | None) -> bool:
    """Whether a measurement must load (and first find) the Inception weights."""
    return features == "inception" and not statistics_only(*sides)


def parse_side(text: str, n: int | None = None, seed: int = 0) -> SideSpec:
    """``model:NAME`` (an installed model or a model file), a ``.npz`` statistics file, or a
    folder of images."""
    if text.startswith("model:"):
        return SideSpec("model", text[len("model:"):], n, seed)
    path = Path(text).expanduser()
    if path.is_dir():
        return SideSpec("folder", str(path))
    if path.is_file() and path.suffix.lower() == ".npz":
        return SideSpec("stats", str(path))
    if not path.exists():
        raise ValueError(f"{text}: no such folder or file (a side is a folder of images, a "
                         ".npz statistics file, or model:NAME)")
    raise ValueError(f"{text}: a side is a folder of images, a .npz statistics file, or "
                     "model:NAME; this is none of them")


@dataclass
class FIDOptions:
    resize: str = DEFAULT_RESIZE
    batch_size: int = 32
    device: torch.device | str = "cpu"
    kid_subsets: int = DEFAULT_SUBSETS
    kid_subset_size: int = DEFAULT_SUBSET_SIZE
    kid_seed: int = 0
    weights: str | None = None  # a user-set weights file (else the cache)
    allow_unverified_weights: bool = False  # use a weights file whose SHA-256 differs
    use_cache: bool = True
    cache: FeatureCache | None = None  # default: the user cache folder
    prdc_k: int = DEFAULT_K  # neighbours for precision, recall, density, coverage
    relative_boot: int = 100  # half-samples behind the relative FD's interval
    relative_split: bool = False  # relative FD between patient-wise halves of the reference
    features: str = "inception"  # or classifier:NAME (an installed classifier or a file)


@dataclass
class SideResult:
    spec: SideSpec
    stats: FeatureStats
    from_cache: bool = False
    skipped: list[str] = field(default_factory=list)
    names: list[str] | None = None  # the file behind each feature row (folder sides)

    @property
    def n(self) -> int | None:
        return self.stats.n

    def to_record(self) -> dict[str, Any]:
        return {"kind": self.spec.kind, "location": self.spec.location, "label": self.spec.label,
                "n": self.n, "seed": self.spec.seed if self.spec.kind == "model" else None,
                "from_cache": self.from_cache, "skipped": len(self.skipped)}


@dataclass
class FIDResult:
    fid: float
    kid: KIDResult | None
    real: SideResult
    fake: SideResult
    settings: dict[str, Any]
    warnings: list[str]
    seconds: float
    finished: str
    prdc: PRDCResult | None = None
    relative: RelativeFD | None = None
    reference_b: SideResult | None = None

    def to_record(self) -> dict[str, Any]:
        """Plain JSON: what the history and ``--json`` keep."""
        relative = None
        if self.relative is not None and self.reference_b is not None:
            split = self.reference_b is self.real
            relative = {**self.relative.to_record(), "real_b": self.reference_b.to_record(),
                        "split": "patient-wise halves of the reference" if split else None}
        return {"finished": self.finished, "fid": self.fid,
                "kid": self.kid.to_dict() if self.kid else None,
                "prdc": self.prdc.to_record() if self.prdc else None,
                "relative": relative,
                "real": self.real.to_record(), "fake": self.fake.to_record(),
                "settings": self.settings, "warnings": self.warnings,
                "seconds": round(self.seconds, 2)}


class FIDMeasurer:
    """The loaded network, its preprocessing and the feature cache: computes sides."""

    def __init__(self, options: FIDOptions, inception: LoadedInception | None = None) -> None:
        self.options = options
        self.device = torch.device(options.device)
        self._inception = inception
        self._extractor: FeatureExtractor | None = None
        self._network_settings: dict[str, Any] = {}
        self.preprocessing = Preprocessing(options.resize)
        self.cache = options.cache or FeatureCache()

    @property
    def classifier_name(self) -> str | None:
        """``NAME`` of ``--features classifier:NAME``; None for Inception."""
        features = self.options.features
        if features == "inception":
            return None
        if not features.startswith("classifier:") or not features[len("classifier:"):]:
            raise ValueError(f"features must be 'inception' or 'classifier:NAME', got "
                             f"{features!r}")
        return features[len("classifier:"):]

    def _classifier_extractor(self) -> tuple[FeatureExtractor, dict[str, Any]]:
        from cxrgan_desktop.engine.classifier.densenet import ARCHITECTURES
        from cxrgan_desktop.engine.classifier.files import load_classifier
        from cxrgan_desktop.engine.classifier.installed import resolve_classifier
        from cxrgan_desktop.metrics.classifier_distance import ClassifierFeatureExtractor

        loaded = load_classifier(resolve_classifier(self.classifier_name))
        spec = loaded.classifier.spec
        dim = ARCHITECTURES[spec.architecture].feature_channels
        extractor = ClassifierFeatureExtractor(loaded.classifier, dim, self.device)
        settings = {"network": f"classifier:{loaded.name}", "weights_file": str(loaded.path),
                    "weights_sha256": loaded.sha256, "weights_verified": True,
                    "feature": f"{dim}-d pooled penultimate features of the pathology "
                               f"classifier {loaded.name} ({spec.architecture}, labels "
                               f"{', '.join(spec.labels)})",
                    "feature_dim": dim, "resize": "classifier", "input_size": spec.input_size,
                    "resize_method": "the classifier's own (resize_images: box-filter "
                                     "pyramid, then bilinear)",
                    "input_range": "[0, 1], the classifier's own normalisation"}
        return extractor, settings

    @property
    def inception(self) -> LoadedInception:
        """Loaded on first use: two statistics files need no network (nor a download)."""
        if self._inception is None:
            self._inception = load_inception(self.options.weights,
                                             verify=not self.options.allow_unverified_weights)
        return self._inception

    @property
    def extractor(self) -> FeatureExtractor:
        if self._extractor is None:
            if self.classifier_name is not None:
                self._extractor, self._network_settings = self._classifier_extractor()
            else:
                self._extractor = FeatureExtractor(self.inception.net, self.device,
                                                   self.preprocessing)
        return self._extractor

    def load_network(self) -> None:
        """Load the feature network now, so that a missing file fails before any work."""
        self.extractor  # noqa: B018

    def settings(self) -> dict[str, Any]:
        from cxrgan_desktop import __version__

        if self.classifier_name is not None:
            self.extractor  # noqa: B018 (loads the classifier and its settings)
            return {**self._network_settings,
                    "statistics": "float64 mean and covariance (N - 1)",
                    "distance": "Frechet (the FID formula on the classifier's features: not "
                                "comparable with any Inception FID)",
                    "device": str(self.device), "software": f"cxrgan-desktop {__version__}"}
        return {"network": self.inception.path.name,
                "weights_file": str(self.inception.path),
                "weights_sha256": self.inception.sha256,
                "weights_verified": self.inception.verified,
                "feature": "2048-d average pool after Mixed_7c",
                "feature_dim": FEATURE_DIM,
                **self.preprocessing.to_dict(),
                "statistics": "float64 mean and covariance (N - 1)",
                "distance": "Frechet, exact: singular values of the feature cross-product "
                            "when both sides have N <= 1024, else symmetric eigendecomposition",
                "device": str(self.device),
                "software": f"cxrgan-desktop {__version__}"}

    def source_for(self, spec: SideSpec) -> ImageSource:
        if spec.kind == "folder":
            source = FolderSource([spec.location])
            if source.count == 0:
                raise ValueError(f"{spec.location}: no image files (PNG, JPEG, TIFF or DICOM)")
            return source
        from cxrgan_desktop.engine.checkpoints import load_generator
        from cxrgan_desktop.store import zoo

        model = load_generator(zoo.resolve_model(spec.location))
        assert spec.n is not None  # SideSpec checks model sides
        return GeneratorSource(model, spec.n, spec.seed, self.device,
                               label=f"model:{spec.location}")

    def side(self, spec: SideSpec, progress: ProgressFn = no_progress,
             cancel: threading.Event | None = None) -> SideResult:
        if spec.kind == "stats":
            return SideResult(spec, load_stats(spec.location))
        source = self.source_for(spec)
        progress(0.0, f"{source.label}: {source.count} images")
        settings = self.settings()
        preprocessing = (self.preprocessing.to_dict() if self.classifier_name is None else
                         {"resize": "classifier", "input_size": settings["input_size"]})
        key = cache_key(source.cache_identity(), preprocessing, settings["weights_sha256"])
        cached = self.cache.load(key) if self.options.use_cache else None
        if cached is not None and (cached.names is not None or spec.kind != "folder"):
            features, skipped, from_cache = cached.features, cached.skipped, True
            names = cached.names
        else:
            features = self.extractor.features(
                source.batches(self.options.batch_size, cancel), source.count,
                progress, cancel)
            skipped, from_cache = list(source.skipped), False
            names = ([str(p) for p in source.read_files] if isinstance(source, FolderSource)
                     else None)
            if self.options.use_cache and len(features) >= 2:
                self.cache.store(key, features, skipped, names)
        if len(features) < 2:
            raise ValueError(f"{source.label}: fewer than 2 readable images "
                             f"({len(skipped)} could not be read: {'; '.join(skipped[:3])})")
        mu, sigma = feature_statistics(features)
        stats = FeatureStats(mu, sigma, len(features), settings, features)
        return SideResult(spec, stats, from_cache, skipped, names)


def settings_conflicts(ours: dict[str, Any], theirs: dict[str, Any] | None,
                       label: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) for comparing statistics made with ``theirs`` against ``ours``."""
    if theirs is None:
        return [], [f"{label}: the file does not record how it was made (a pytorch-fid "
                    "file?); the score is only valid if it used the same network and resize "
                    f"mode ({ours['resize']})"]
    errors = [f"{label}: made with {key} = {theirs.get(key)!r}, this run uses {ours[key]!r}; "
              f"recompute it, or measure with the same setting"
              for key in COMPARED_SETTINGS if recorded(theirs, key) != recorded(ours, key)]
    return errors, []


def size_warnings(side: SideResult, name: str) -> list[str]:
    warnings = []
    if side.n is not None and side.n < RECOMMENDED_N:
        warnings.append(f"{name}: N = {side.n} < {RECOMMENDED_N}: FID is biased upward for "
                        "small N and not comparable with published scores; read KID, or "
                        "compare only with FIDs of the same N")
    if side.skipped:
        warnings.append(f"{name}: {len(side.skipped)} file(s) could not be read and were left "
                        f"out, e.g. {side.skipped[0]}")
    return warnings


def statistics_only_settings(real: SideResult, fake: SideResult
                             ) -> tuple[dict[str, Any], list[str], list[str]]:
    """(settings, errors, warnings) for two statistics files compared with each other: no
    network is loaded, so each file's record is checked against the other's."""
    ours, theirs = real.stats.settings, fake.stats.settings
    label_real, label_fake = f"real ({real.spec.location})", f"synthetic ({fake.spec.location})"
    errors, warnings = [], []
    if ours is None or theirs is None:
        unknown = [label for label, record in ((label_real, ours), (label_fake, theirs))
                   if record is None]
        warnings.append(f"{' and '.join(unknown)}: the file does not record how it was made "
                        "(a pytorch-fid file?); the score is only valid if both used the same "
                        "network and resize mode")
    else:
        errors = [f"{label_fake}: made with {key} = {recorded(theirs, key)!r}, {label_real} "
                  f"with {recorded(ours, key)!r}; recompute one of them with the other's "
                  "setting" for key in COMPARED_SETTINGS
                  if recorded(theirs, key) != recorded(ours, key)]
    settings = {**(ours or theirs or {}),
                "computed_from": "two statistics files; no network loaded"}
    return settings, errors, warnings


def measure_relative(measurer: FIDMeasurer, real: SideResult, fake: SideResult,
                     reference_b: SideSpec, progress: ProgressFn,
                     cancel: threading.Event | None) -> tuple[SideResult, RelativeFD]:
    """The relative FD of Woodland et al. (2024): FD(real, synthetic) / FD(real, real B),
    where real B is a second sample of real images (other patients, same kind of data), with
    an interval from half-samples. All three sets need their features (not only mean and
    covariance)."""
    side_b = measurer.side(reference_b, sub_progress(progress, 0.0, 0.5), cancel)
    named = (("real", real), ("synthetic", fake), ("second reference", side_b))
    missing = [name for name, side in named if side.stats.features is None]
    if missing:
        raise ValueError(f"relative FD needs the features of every set; {', '.join(missing)} "
                         "has only mean and covariance (a statistics file saved without "
                         "--with-features)")
    result = relative_fd(real.stats.features, side_b.stats.features, fake.stats.features,
                         n_boot=measurer.options.relative_boot, seed=measurer.options.kid_seed,
                         cancel=cancel, progress=sub_progress(progress, 0.5, 1.0))
    return side_b, result


def relative_by_halves(real: SideResult, fake: SideResult, options: FIDOptions,
                       progress: ProgressFn, cancel: threading.Event | None) -> RelativeFD:
    """The relative FD with the reference split patient-wise into halves A and B (no patient
    in both; ChestX-ray14 names give the patient, other names count as their own patient):
    FD(A, synthetic) / FD(A, B). Needs the reference's images, one feature row per file."""
    if real.names is None or real.stats.features is None:
        raise ValueError(f"{real.spec.label}: a patient-wise split needs a folder of images as "
                         "the reference (a statistics file or a model has no patients)")
    patients = patients_from_paths(real.names)
    half_a, half_b = patient_halves(patients.ids, seed=options.kid_seed)
    ids = list(patients.ids)
    features = real.stats.features
    return relative_fd(features[half_a], features[half_b], fake.stats.features,
                       n_boot=options.relative_boot, seed=options.kid_seed, cancel=cancel,
                       progress=progress, patients_a=[ids[i] for i in half_a],
                       patients_b=[ids[i] for i in half_b],
                       notes=[patients.note] if patients.note else [])


def compute_fid(real: SideSpec, fake: SideSpec, options: FIDOptions,
                progress: ProgressFn = no_progress, cancel: threading.Event | None = None,
                inception: LoadedInception | None = None,
                reference_b: SideSpec | None = None) -> FIDResult:
    """FID, KID, precision/recall/density/coverage and, given ``reference_b`` (a second set
    of real images), the relative FD with its interval."""
    started = time.perf_counter()
    measurer = FIDMeasurer(options, inception)
    no_network = statistics_only(real, fake, reference_b)
    if not no_network:
        progress(0.0, "loading the feature network")
        measurer.load_network()
    real_side = measurer.side(real, sub_progress(progress, 0.02, 0.48), cancel)
    check_cancel(cancel)
    fake_side = measurer.side(fake, sub_progress(progress, 0.48, 0.94), cancel)
    errors, warnings = [], []
    if no_network:
        settings, errors, warnings = statistics_only_settings(real_side, fake_side)
    else:
        settings = measurer.settings()
        for side, name in ((real_side, "real"), (fake_side, "synthetic")):
            if side.spec.kind == "stats":
                side_errors, side_warnings = settings_conflicts(
                    settings, side.stats.settings, f"{name} ({side.spec.location})")
                errors += side_errors
                warnings += side_warnings
    dims = {name: side.stats.mu.shape[0] for side, name in
            ((real_side, "real"), (fake_side, "synthetic"))}
    if len(set(dims.values())) > 1:
        errors.append(f"the sides have different feature sizes ({dims}): made with different "
                      "feature networks")
    if errors:
        raise ValueError("the two sides cannot be compared: " + "; ".join(errors))
    if not settings.get("weights_verified", True):
        warnings.append(f"the Inception weights ({settings.get('weights_file')}) are not the "
                        "published file (SHA-256 not checked, --allow-unverified-weights): "
                        "this FID is not comparable with published ones")
    for side, name in ((real_side, "real"), (fake_side, "synthetic")):
        warnings += size_warnings(side, name)
    progress(0.94, "Frechet distance")
    fid = frechet_fid(real_side.stats.mu, real_side.stats.sigma, fake_side.stats.mu,
                      fake_side.stats.sigma, real_side.stats.features, fake_side.stats.features)
    kid = prdc = None
    real_features, fake_features = real_side.stats.features, fake_side.stats.features
    if real_features is not None and fake_features is not None:
        kid = kernel_inception_distance(
            real_features, fake_features, subsets=options.kid_subsets,
            subset_size=options.kid_subset_size, seed=options.kid_seed,
            progress=sub_progress(progress, 0.95, 0.97), cancel=cancel)
        if min(len(real_features), len(fake_features)) > options.prdc_k:
            prdc = precision_recall_density_coverage(
                real_features, fake_features, k=options.prdc_k,
                progress=sub_progress(progress, 0.97, 1.0), cancel=cancel)
        else:
            warnings.append(f"precision/recall/density/coverage not computed: each side needs "
                            f"more than k = {options.prdc_k} images")
    else:
        warnings.append("KID and precision/recall/density/coverage not computed: a statistics "
                        "file without features has only mean and covariance (save with "
                        "--with-features to keep them)")
    side_b = relative = None
    if options.relative_split and reference_b is None:
        if fake_side.stats.features is None:
            raise ValueError("relative FD needs the synthetic side's features (a statistics "
                             "file saved without --with-features has only mean and covariance)")
        relative = relative_by_halves(real_side, fake_side, options, progress, cancel)
        side_b = real_side
    elif reference_b is not None:
        side_b, relative = measure_relative(measurer, real_side, fake_side, reference_b,
                                            progress, cancel)
        warnings += size_warnings(side_b, "second reference")
        warnings += [f"relative FD: {w}" for w in relative.warnings]
    progress(1.0, f"FID {fid:.3f}")
    finished = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return FIDResult(fid, kid, real_side, fake_side, settings, warnings,
                     time.perf_counter() - started, finished, prdc, relative, side_b)
