"""Provenance of synthetic radiographs: one series per export batch, one record per image.

Shared by the DICOM export and the 16-bit PNG + JSON sidecar export
(:mod:`cxrgan_desktop.imaging.dicom_export`), so both formats carry the same facts: the model
and its SHA-256, the latent seed or index, latent class optimisation details when present, the
display window, and the study/series identity of the batch.

UIDs are UUID-derived ``2.25.<uuid>`` UIDs (PS3.5 B.2, ``pydicom.uid.generate_uid(None)``,
122 random bits): globally unique without borrowing any organisation's registered root.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydicom.uid import generate_uid

from cxrgan_desktop import __version__
from cxrgan_desktop.imaging.windowing import Window, unit_window

SOFTWARE = "cxrgan-desktop"
SYNTHETIC_PATIENT_NAME = "SYNTHETIC^CXRGAN"
PATIENT_ID_PREFIX = "SYN-"
SIDECAR_FORMAT = "cxrgan-desktop synthetic image sidecar v1"
WARNING_TEXT = "SYNTHETIC IMAGE - NOT A REAL PATIENT - NOT FOR CLINICAL USE."


def new_uid() -> str:
    """A fresh ``2.25.<uuid4>`` UID (random, globally unique, no registered root needed)."""
    return str(generate_uid(prefix=None))


@dataclass(frozen=True)
class LCOInfo:
    """How latent class optimisation chose this image's latent vector.

    ``requested``: label -> wanted (True present, False absent); ``probabilities``: label ->
    the classifier's probability for the final image; ``details``: anything else worth
    recording (steps, loss, learning rate...), JSON-serialisable.
    """

    requested: Mapping[str, bool]
    probabilities: Mapping[str, float]
    classifier_name: str = ""
    classifier_sha256: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"requested": {k: bool(v) for k, v in self.requested.items()},
                "probabilities": {k: float(v) for k, v in self.probabilities.items()},
                "classifier_name": self.classifier_name,
                "classifier_sha256": self.classifier_sha256, "details": dict(self.details)}

    def describe(self) -> str:
        wanted = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in self.requested.items())
        probs = ", ".join(f"{k}={float(v):.3f}" for k, v in self.probabilities.items())
        who = ""
        if self.classifier_name or self.classifier_sha256:
            who = f" ({self.classifier_name} sha256 {self.classifier_sha256})"
        return (f"Latent class optimisation: requested labels [{wanted or 'none'}]; "
                f"classifier{who} probabilities [{probs or 'none'}].")


@dataclass(frozen=True)
class ProjectionSource:
    """The real radiograph a latent was projected from (``cxrgan project``).

    An image rendered from such a latent is still synthetic, but it is derived from one
    person's radiograph and may resemble it: the record says so, naming the source by its
    SHA-256 (not its name, which may identify the patient).
    """

    source_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"projection_of": self.source_sha256,
                "note": "latent projected from a real radiograph; this image is synthetic "
                        "and derived from it"}

    def describe(self) -> str:
        return (f"Derived from a projection of a real radiograph (source sha256 "
                f"{self.source_sha256}): synthetic, derived, not that radiograph.")


@dataclass(frozen=True)
class SyntheticSeries:
    """What one export batch shares: study, series, synthetic patient, model, dates."""

    study_uid: str
    series_uid: str
    patient_id: str
    created: _dt.datetime
    model_name: str
    model_sha256: str
    series_description: str
    study_description: str = "SYNTHETIC - NOT A REAL PATIENT"
    series_number: int = 1
    patient_name: str = SYNTHETIC_PATIENT_NAME

    def to_dict(self) -> dict[str, Any]:
        return {"study_instance_uid": self.study_uid, "series_instance_uid": self.series_uid,
                "patient_name": self.patient_name, "patient_id": self.patient_id,
                "created": self.created.isoformat(timespec="seconds"),
                "series_description": self.series_description,
                "series_number": self.series_number,
                "model": {"name": self.model_name, "sha256": self.model_sha256}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SyntheticSeries:
        """The inverse of :meth:`to_dict` (a resumed job continues the same series)."""
        return cls(study_uid=data["study_instance_uid"], series_uid=data["series_instance_uid"],
                   patient_id=data["patient_id"],
                   created=_dt.datetime.fromisoformat(data["created"]),
                   model_name=data["model"]["name"], model_sha256=data["model"]["sha256"],
                   series_description=data["series_description"],
                   series_number=int(data["series_number"]),
                   patient_name=data.get("patient_name", SYNTHETIC_PATIENT_NAME))


def new_synthetic_series(model_name: str, model_sha256: str, *,
                         series_description: str | None = None, series_number: int = 1,
                         created: _dt.datetime | None = None) -> SyntheticSeries:
    """A fresh series (new study and series UIDs, new synthetic patient ID) for one batch."""
    if series_number < 0:
        raise ValueError(f"series number must be non-negative, got {series_number}")
    when = created or _dt.datetime.now().astimezone()
    return SyntheticSeries(
        study_uid=new_uid(), series_uid=new_uid(),
        patient_id=PATIENT_ID_PREFIX + uuid.uuid4().hex[:20].upper(), created=when,
        model_name=model_name, model_sha256=model_sha256,
        series_description=series_description or f"SYNTHETIC PA chest, {model_name}",
        series_number=series_number)


@dataclass(frozen=True)
class SyntheticImageInfo:
    """Per-image provenance: ``index`` within the batch and within its latents.

    ``seed`` set: the latent vector is ``latents_for_seed(seed, ...)[index]``; else
    ``latents_source`` names the .npy file whose row ``index`` was rendered. ``window`` is in
    stored units (0..65535); the default shows the full range. ``truncation``: the psi the
    image was rendered with (:mod:`cxrgan_desktop.engine.truncation`); below 1 the latent
    alone does not make the image, so the text and the record name psi (at 1 they are
    exactly what they were before truncation existed).
    """

    index: int
    seed: int | None = None
    latents_source: str | None = None
    lco: LCOInfo | None = None
    window: Window = field(default_factory=unit_window)
    window_explanation: str = ""
    derived_from: ProjectionSource | None = None  # the latent was projected from a radiograph
    truncation: float = 1.0  # psi (1: none)

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"image index must be non-negative, got {self.index}")
        if not 0.0 <= self.truncation <= 1.0:  # NaN too
            raise ValueError(f"truncation psi must be between 0 and 1, got {self.truncation}")

    def latent_text(self) -> str:
        if self.seed is not None:
            text = f"latent seed {self.seed}, index {self.index}"
        elif self.latents_source:
            text = f"latent vector {self.index} of {self.latents_source}"
        else:
            text = f"latent index {self.index}"
        if self.truncation != 1.0:
            text += (f", truncation psi {self.truncation:g} (towards the model's mean first "
                     "activation)")
        return text

    def to_dict(self) -> dict[str, Any]:
        """The record; ``derived_from`` only for a projected latent and ``truncation`` only
        below psi 1 (other records are as they were)."""
        data = {"index": self.index, "seed": self.seed, "latents_source": self.latents_source,
                "window": {"center": self.window.center, "width": self.window.width},
                "lco": self.lco.to_dict() if self.lco is not None else None}
        if self.derived_from is not None:
            data["derived_from"] = self.derived_from.to_dict()
        if self.truncation != 1.0:
            data["truncation"] = self.truncation
        return data


def describe(series: SyntheticSeries, info: SyntheticImageInfo) -> str:
    """The human-readable provenance written into Image Comments (and the sidecar)."""
    text = (f"{WARNING_TEXT} Generated by {SOFTWARE} {__version__} with model "
            f"{series.model_name} (sha256 {series.model_sha256}), {info.latent_text()}.")
    if info.lco is not None:
        text += " " + info.lco.describe()
    if info.derived_from is not None:
        text += " " + info.derived_from.describe()
    return text


def provenance(series: SyntheticSeries, info: SyntheticImageInfo) -> dict[str, Any]:
    """The JSON-ready metadata of one image (the PNG sidecar's content)."""
    return {"format": SIDECAR_FORMAT, "synthetic": True,
            "software": {"name": SOFTWARE, "version": __version__},
            "series": series.to_dict(), "image": info.to_dict(),
            "pixels": "16-bit grayscale, value = round(65535 * pixel), 0 = black (MONOCHROME2)",
            "description": describe(series, info)}
