"""Export synthetic radiographs as DICOM Secondary Capture, or as 16-bit PNG + JSON sidecar.

Every file says, in every place a person or program looks, that no real patient exists:
Conversion Type SYN, Image Type DERIVED\\SECONDARY\\SYNTHETIC, Patient Identity Removed YES
with a De-identification Method, Patient Name ``SYNTHETIC^CXRGAN``, a Patient ID ``SYN-...``
that no hospital system issues, Burned In Annotation NO, and descriptions naming the model
(with its SHA-256), the latent seed/index and, for latent class optimisation, the requested
labels and the classifier's probabilities.

Choice of IOD: single-frame **Secondary Capture Image Storage** (1.2.840.10008.5.1.4.1.1.7).

- One file per image is what the GUI, the reader study and users' PACS want; the Multi-frame
  Grayscale Word SC IOD (…7.3) would be used here with one frame per file anyway, and then
  adds the Multi-frame and SC Multi-frame modules (Number of Frames, Frame Increment Pointer,
  Presentation LUT Shape, forced Rescale 0/1) for no gain.
- The single-frame SC IOD is the one every viewer, PACS and research toolkit reads, allows
  16-bit MONOCHROME2 pixels, and includes the (optional) VOI LUT module, so the window the
  user chose travels as Window Center / Width. Modality LUT is left out: stored value =
  round(65535 * pixel), exactly the 16-bit PNG value (:func:`png16.to_uint16`).
- Neither SC IOD has View Position (it lives in the DX/CR series modules), so the PA view is
  carried by Patient Orientation ``L\\F`` (rows run to the patient's left, columns to the
  feet: a PA chest in the conventional display) and by the descriptions. Modality is ``OT``:
  no acquisition device made these pixels.

UIDs are UUID-derived ``2.25.<uuid>`` UIDs (PS3.5 B.2, ``pydicom.uid.generate_uid(None)``,
122 random bits): globally unique without borrowing an organisation's registered root. The
Implementation Class UID is the name-based (UUID v5) ``2.25`` UID of this software version.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from pydicom.valuerep import format_number_as_ds

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import atomic_write_bytes, atomic_write_json, atomic_writer
from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.imaging.png16 import encode_png16, to_uint16
from cxrgan_desktop.imaging.synthetic_provenance import (
    PATIENT_ID_PREFIX,
    SIDECAR_FORMAT,
    SOFTWARE,
    SYNTHETIC_PATIENT_NAME,
    LCOInfo,
    SyntheticImageInfo,
    SyntheticSeries,
    describe,
    new_synthetic_series,
    new_uid,
    provenance,
)
from cxrgan_desktop.imaging.windowing import unit_window

IMAGE_TYPE = ("DERIVED", "SECONDARY", "SYNTHETIC")
DEIDENTIFICATION_METHOD = "Synthetic image, no real patient; identifiers are placeholders"
IMPLEMENTATION_CLASS_UID = f"2.25.{uuid.uuid5(uuid.NAMESPACE_URL, f'{SOFTWARE}:{__version__}').int}"
IMPLEMENTATION_VERSION_NAME = f"CXRGAN_{__version__}"[:16]

__all__ = [
    "PATIENT_ID_PREFIX", "SYNTHETIC_PATIENT_NAME", "LCOInfo", "SyntheticImageInfo",
    "SyntheticSeries", "build_dataset", "describe", "encode_dicom", "export_dicom",
    "export_image", "export_images", "export_png16_with_sidecar", "new_synthetic_series",
    "new_uid", "numbered_name", "provenance", "read_sidecar", "sidecar_path",
]


# ---- DICOM ---------------------------------------------------------------------------------

def _text(value: str, limit: int) -> str:
    """Text for a string VR: printable, no backslash (a value separator), at most ``limit``."""
    clean = "".join(ch if ch.isprintable() else " " for ch in value).replace("\\", "/")
    return clean[:limit].strip()


def _checked(image01: np.ndarray) -> np.ndarray:
    array = np.asarray(image01)
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"expected a non-empty 2-D grayscale image, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("image contains NaN or infinite values")
    return array


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _da(when: _dt.datetime) -> str:
    return when.strftime("%Y%m%d")


def _tm(when: _dt.datetime) -> str:
    return when.strftime("%H%M%S")


def build_dataset(image01: np.ndarray, series: SyntheticSeries,
                  info: SyntheticImageInfo) -> Dataset:
    """The Secondary Capture dataset (with File Meta Information) for one [0, 1] image."""
    pixels = to_uint16(_checked(image01))
    rows, cols = pixels.shape
    if rows > 65535 or cols > 65535:
        raise ValueError(f"image too large for DICOM rows/columns: {pixels.shape}")
    sop_uid = new_uid()
    now = _dt.datetime.now().astimezone()
    created_date, created_time = _da(series.created), _tm(series.created)
    summary = describe(series, info)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    meta.SourceApplicationEntityTitle = "CXRGAN"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: model names may be any text
    # SOP Common
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = _da(now), _tm(now)
    ds.TimezoneOffsetFromUTC = now.strftime("%z") or "+0000"
    # Patient: a placeholder that cannot be mistaken for, or collide with, a real patient
    ds.PatientName = series.patient_name
    ds.PatientID = series.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = _text(DEIDENTIFICATION_METHOD, 64)
    # General Study
    ds.StudyInstanceUID = series.study_uid
    ds.StudyDate, ds.StudyTime = created_date, created_time
    ds.ReferringPhysicianName = ""
    ds.StudyID = "SYN"
    ds.AccessionNumber = ""
    ds.StudyDescription = _text(series.study_description, 64)
    # General Series
    ds.Modality = "OT"
    ds.SeriesInstanceUID = series.series_uid
    ds.SeriesNumber = series.series_number
    ds.SeriesDate, ds.SeriesTime = created_date, created_time
    ds.SeriesDescription = _text(series.series_description, 64)
    ds.BodyPartExamined = "CHEST"
    # General Equipment and SC Equipment
    ds.Manufacturer = SOFTWARE
    ds.ManufacturerModelName = SOFTWARE
    ds.SoftwareVersions = __version__
    ds.ConversionType = "SYN"
    ds.SecondaryCaptureDeviceManufacturer = SOFTWARE
    ds.SecondaryCaptureDeviceManufacturerModelName = _text(series.model_name, 64) or SOFTWARE
    ds.SecondaryCaptureDeviceSoftwareVersions = __version__
    # General Image and SC Image
    ds.InstanceNumber = info.index + 1
    ds.PatientOrientation = ["L", "F"]
    ds.ContentDate, ds.ContentTime = _da(now), _tm(now)
    ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = ds.ContentDate, ds.ContentTime
    ds.ImageType = list(IMAGE_TYPE)
    ds.DerivationDescription = _text(summary, 1024)
    ds.ImageComments = _text(summary, 10240)
    ds.BurnedInAnnotation = "NO"
    ds.RecognizableVisualFeatures = "NO"
    ds.LossyImageCompression = "00"
    # Image Pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype("<u2", copy=False).tobytes()
    ds["PixelData"].VR = "OW"
    # VOI LUT: the window the user chose, in stored units
    ds.WindowCenter = _ds(info.window.center)
    ds.WindowWidth = _ds(info.window.width)
    ds.WindowCenterWidthExplanation = _text(info.window_explanation or (
        "FULL RANGE" if info.window == unit_window() else "USER"), 64)
    ds.VOILUTFunction = "LINEAR"
    return ds


def export_dicom(path: str | os.PathLike[str], image01: np.ndarray, series: SyntheticSeries,
                 info: SyntheticImageInfo) -> Path:
    """Write one synthetic Secondary Capture file atomically; returns its path."""
    ds = build_dataset(image01, series, info)
    target = Path(path)
    with atomic_writer(target) as handle:
        dcmwrite(handle, ds, enforce_file_format=True)
    return target


def encode_dicom(image01: np.ndarray, series: SyntheticSeries,
                 info: SyntheticImageInfo) -> bytes:
    """The bytes :func:`export_dicom` would write (for previews and tests)."""
    buffer = io.BytesIO()
    dcmwrite(buffer, build_dataset(image01, series, info), enforce_file_format=True)
    return buffer.getvalue()


# ---- 16-bit PNG + JSON sidecar -------------------------------------------------------------

def sidecar_path(png_path: str | os.PathLike[str]) -> Path:
    return Path(png_path).with_suffix(".json")


def export_png16_with_sidecar(path: str | os.PathLike[str], image01: np.ndarray,
                              series: SyntheticSeries, info: SyntheticImageInfo) -> Path:
    """Write ``img.png`` (16-bit) and ``img.json`` (the same provenance), each atomically.

    The PNG is written first, so a sidecar never describes a missing image.
    """
    target = Path(path)
    atomic_write_bytes(target, encode_png16(_checked(image01)))
    atomic_write_json(sidecar_path(target), provenance(series, info))
    return target


def read_sidecar(png_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar written beside a PNG by :func:`export_png16_with_sidecar`."""
    with open(sidecar_path(png_path), encoding="utf-8") as handle:
        data = json.load(handle)
    if data.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"{sidecar_path(png_path)}: not a {SOFTWARE} sidecar")
    return data


# ---- batches -------------------------------------------------------------------------------

EXPORT_FORMATS = {"dicom": ".dcm", "png16": ".png"}


def numbered_name(index: int, count: int, suffix: str = ".png") -> str:
    """``img_00000.png``: zero-padded so that file names sort in latent order."""
    return f"img_{index:0{max(5, len(str(count - 1)))}d}{suffix}"


def export_image(path: str | os.PathLike[str], image01: np.ndarray, series: SyntheticSeries,
                 info: SyntheticImageInfo, image_format: str) -> Path:
    """Write one image as ``"dicom"`` (.dcm) or ``"png16"`` (.png + .json sidecar)."""
    if image_format == "dicom":
        return export_dicom(path, image01, series, info)
    if image_format == "png16":
        return export_png16_with_sidecar(path, image01, series, info)
    raise ValueError(f"unknown export format {image_format!r}; choose from "
                     f"{tuple(EXPORT_FORMATS)}")


def export_images(out_dir: str | os.PathLike[str], images: Sequence[np.ndarray],
                  infos: Sequence[SyntheticImageInfo], series: SyntheticSeries, *,
                  image_format: str = "dicom", progress: ProgressFn = no_progress,
                  cancel: threading.Event | None = None) -> list[Path]:
    """Export a batch (one study/series) as ``img_NNNNN.dcm`` or ``.png`` + ``.json``.

    The job shape of :mod:`cxrgan_desktop.core.jobs`: raises ``Cancelled`` between images; files
    already written are whole.
    """
    if image_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {image_format!r}; choose from "
                         f"{tuple(EXPORT_FORMATS)}")
    if len(images) != len(infos):
        raise ValueError(f"{len(images)} images but {len(infos)} image infos")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    count, written = len(images), []
    for done, (image, info) in enumerate(zip(images, infos, strict=True), start=1):
        check_cancel(cancel)
        path = out / numbered_name(info.index, max(count, info.index + 1),
                                   EXPORT_FORMATS[image_format])
        written.append(export_image(path, image, series, info, image_format))
        progress(done / count, f"{done}/{count} images")
    return written
