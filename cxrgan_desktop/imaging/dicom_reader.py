"""DICOM radiographs: decode, Modality LUT, VOI (window or LUT) to [0, 1], MONOCHROME1 invert.

Order of operations follows the DICOM grayscale pipeline (PS3.3 C.11): stored values ->
Modality LUT (Rescale Slope/Intercept, or a Modality LUT Sequence) -> VOI (Window
Center/Width, the first of several, through the project's linear VOI function; or a VOI LUT
Sequence; else robust percentiles) -> MONOCHROME1 is inverted so that 0 is always black.

Files that decode but describe no sensible image are refused rather than normalised into a
blank one: a Rescale Slope of 0 (every pixel the same value) or a non-finite slope or
intercept, and NaN or infinite pixel values. An unusable VOI window (width 0, or not a
number) is only a display hint, and the pixels are fine: it is ignored, the image is
normalised by robust percentiles instead, and a warning says so. Attribute values that
cannot be parsed (``NumberOfFrames = "1A"``, a bad VR) are reported as such.

Besides the pixels, the reader records what a viewer needs to show the image in the file's
own units: which modality values became pixel 0 and 1 (when normalisation was linear), every
Window Center/Width of the header with its explanation, the VOI LUT's explanation, and how
many decimals the modality values have. These are display hints: a malformed second window
or explanation is left out of the record, never a reason to refuse a readable image.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing, get_decoder

from cxrgan_desktop.imaging.image_file import (
    ImageReadError,
    LoadedImage,
    open_image_file,
    require_finite,
)
from cxrgan_desktop.imaging.windowing import Window, apply_window, percentile_window

RADIOGRAPH_MODALITIES = {"CR", "DX", "DR", "RG", "SC", "OT", "MG", "PX", "IO"}
WARNED_MODALITIES = {"MR", "CT"}
CODEC_EXTRA = "pip install 'cxrgan-desktop[dicom-codecs]'"
# what that extra's permissively licensed plugins decode (pylibjpeg-openjpeg, pylibjpeg-rle,
# pyjpegls; baseline JPEG also through Pillow)
EXTRA_DECODES = {"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                 "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5",
                 "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.50",
                 "1.2.840.10008.1.2.4.51"}
# what malformed attribute values raise inside pydicom and numpy
_ATTRIBUTE_ERRORS = (ValueError, TypeError, AttributeError, KeyError, IndexError,
                     NotImplementedError, OverflowError, ZeroDivisionError)


def read_dicom(path: Path, handle: BinaryIO | None = None) -> LoadedImage:
    """Read the DICOM file ``path`` (from ``handle`` when the caller opened it already).

    Raises :class:`ImageReadError` for files that are not DICOM, are damaged, hold no
    image, or hold values that make no image; see the module notes.
    """
    if handle is None:
        with open_image_file(path) as own:
            return read_dicom(path, own)
    try:
        ds = pydicom.dcmread(handle)
    except InvalidDicomError as error:
        raise ImageReadError(path, f"not a DICOM file ({error})") from error
    except MemoryError:
        raise
    except Exception as error:  # truncated headers fail deep inside the parser
        raise ImageReadError(path, f"damaged DICOM file ({type(error).__name__}: "
                             f"{error})") from error
    try:
        return _to_image(path, ds)
    except _ATTRIBUTE_ERRORS as error:  # e.g. NumberOfFrames "1A", a sequence where a number
        raise ImageReadError(path, f"invalid DICOM attribute value ({type(error).__name__}: "
                             f"{error})") from error


def _to_image(path: Path, ds: pydicom.Dataset) -> LoadedImage:
    warnings: list[str] = []
    _check_is_image(path, ds, warnings)
    stored = _decode_first_frame(path, ds, warnings)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        stored = _grey_from_colour(path, stored, photometric)
    if stored.dtype.kind == "f":
        require_finite(path, stored, "stored pixel values")
    _check_rescale(path, ds)
    values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    require_finite(path, values, "pixel values after the Modality LUT")
    pixels, normalisation, value_range = _voi_to_unit(path, ds, values, warnings)
    if photometric == "MONOCHROME1":
        pixels = 1.0 - pixels
        normalisation += "; MONOCHROME1 inverted"
        value_range = None if value_range is None else (value_range[1], value_range[0])
    sop = ds.get("SOPInstanceUID")
    return LoadedImage(pixels=np.ascontiguousarray(pixels, dtype=np.float32), source=path,
                       file_format="DICOM", photometric=photometric,
                       normalisation=normalisation, sop_instance_uid=str(sop) if sop else None,
                       modality=str(ds.get("Modality", "")) or None, warnings=tuple(warnings),
                       modality_range=value_range, voi_windows=header_windows(ds),
                       voi_lut=_voi_lut_explanation(ds),
                       modality_decimals=_modality_decimals(ds, stored))


def _check_rescale(path: Path, ds: pydicom.Dataset) -> None:
    """Refuse a Rescale Slope/Intercept that would make the image blank or not a number
    (pydicom applies them when both are present)."""
    if ds.get("ModalityLUTSequence") or "RescaleSlope" not in ds \
            or "RescaleIntercept" not in ds:
        return
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        raw = ds[keyword].value
        if raw is None or raw == "":
            raise ImageReadError(path, f"{keyword} is present but empty")
        value = float(raw)
        if not math.isfinite(value):
            raise ImageReadError(path, f"{keyword} is {raw}, not a finite number")
    if float(ds.RescaleSlope) == 0.0:
        raise ImageReadError(path, "RescaleSlope is 0: every pixel would have the same value "
                             "(a blank image)")


def _check_is_image(path: Path, ds: pydicom.Dataset, warnings: list[str]) -> None:
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        kind = ds.get("SOPClassUID")
        name = getattr(kind, "name", None) or "unknown kind"
        raise ImageReadError(path, f"a DICOM object without pixel data ({name}), not an image")
    modality = str(ds.get("Modality", "")).upper()
    if modality in WARNED_MODALITIES:
        warnings.append(f"modality {modality}: not a radiograph; read as a single grayscale "
                        "slice")
    elif modality and modality not in RADIOGRAPH_MODALITIES:
        warnings.append(f"modality {modality}: not a radiograph modality")
    intent = str(ds.get("PresentationIntentType", "")).upper()
    if intent == "FOR PROCESSING":
        warnings.append("DX 'FOR PROCESSING' image: raw detector data, not meant for display")


def _decode_first_frame(path: Path, ds: pydicom.Dataset, warnings: list[str]) -> np.ndarray:
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError as error:
            raise ImageReadError(path, f"no decoder exists for transfer syntax {syntax.name} "
                                 f"({syntax})") from error
        if not decoder.is_available:
            needs = "; ".join(decoder.missing_dependencies) or "a decoder plugin"
            fix = (f"install the optional decoders: {CODEC_EXTRA}" if syntax in EXTRA_DECODES
                   else "install GDCM's decoder (BSD licence): pip install python-gdcm")
            raise ImageReadError(path, f"compressed with {syntax.name}, and no installed "
                                 f"decoder reads it; {fix} (pydicom lists: {needs})")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        if frames > 1:
            warnings.append(f"multi-frame file ({frames} frames): only the first was read")
            array = pydicom.pixels.pixel_array(ds, index=0)
        else:
            array = ds.pixel_array
    except Exception as error:  # truncated pixel data, corrupt codestreams, ...
        raise ImageReadError(path, f"the pixel data cannot be decoded ({error})") from error
    if array.ndim == 3 and int(ds.get("SamplesPerPixel", 1)) == 1:
        array = array[0]
    if array.ndim not in (2, 3) or min(array.shape[:2]) < 2:
        raise ImageReadError(path, f"unexpected pixel array shape {array.shape}")
    return array


def _grey_from_colour(path: Path, stored: np.ndarray, photometric: str) -> np.ndarray:
    if stored.ndim == 3 and photometric == "RGB":
        spread = float((stored.max(axis=-1).astype(np.float64) - stored.min(axis=-1)).max())
        if spread <= 2:
            return stored.mean(axis=-1)
    raise ImageReadError(path, f"photometric interpretation {photometric}: a colour image; "
                         "only grayscale radiographs are supported")


def _voi_to_unit(path: Path, ds: pydicom.Dataset, values: np.ndarray, warnings: list[str]
                 ) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    """Normalise modality values to [0, 1] with the file's own VOI when it has one; an
    unusable window is ignored with a warning (the pixels are fine, only the hint is not).

    Also returns the modality values that became 0 and 1 when the map is linear (LINEAR and
    LINEAR_EXACT windows, percentiles), None for a LUT or a sigmoid."""
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        if not 1 <= bits <= 16:
            raise ImageReadError(path, f"VOI LUT Descriptor gives {bits} bits per entry "
                                 "(1 to 16 allowed)")
        indices = values.astype(np.int64) if np.array_equal(values, np.round(values)) else values
        out = apply_voi(indices, ds, index=0).astype(np.float64) / (2**bits - 1)
        return (np.clip(out, 0.0, 1.0),
                f"VOI LUT Sequence (first of {len(ds.VOILUTSequence)})", None)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        window_values = _first_window(ds)
        if window_values is None:
            warnings.append("ignored an unreadable VOI window (Window Center/Width empty or "
                            "not numbers); normalised by percentiles instead")
        else:
            center, width, count = window_values
            function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
            label = (f"window c={center:g} w={width:g}"
                     + (f" (first of {count})" if count > 1 else ""))
            usable = math.isfinite(center) and math.isfinite(width)
            if usable and function == "LINEAR" and width >= 1:
                window = Window(center, width)
                return apply_window(values, window), label, (window.low, window.high)
            if usable and function in ("LINEAR_EXACT", "SIGMOID") and width > 0:
                y_min, y_max = voi_output_range(ds)
                if y_max > y_min:
                    out = (apply_windowing(values, ds, index=0) - y_min) / (y_max - y_min)
                    linear = ((center - width / 2, center + width / 2)
                              if function == "LINEAR_EXACT" else None)
                    return (np.clip(out, 0.0, 1.0), f"{label}, VOI LUT function {function}",
                            linear)
            warnings.append(f"ignored an unusable VOI window (c={center:g}, w={width:g}, "
                            f"{function}); normalised by percentiles instead")
    window = percentile_window(values)
    return apply_window(values, window), (f"percentiles 0.5-99.5 (window c={window.center:g} "
                                          f"w={window.width:g})"), (window.low, window.high)


def _printable(text: object) -> str:
    """A header string as one printable line (explanations are shown in menus)."""
    return "".join(ch if ch.isprintable() else "?" for ch in " ".join(str(text).split()))


def _values(ds: pydicom.Dataset, keyword: str) -> list:
    element = ds[keyword]
    if element.VM > 1:
        return list(element.value)
    return [element.value] if element.VM == 1 else []


def header_windows(ds: pydicom.Dataset) -> tuple[tuple[float, float, str], ...]:
    """Every usable Window Center/Width pair of the header, in modality units, with its
    Window Center & Width Explanation ("" when absent). Pairs that are not finite numbers
    or narrower than 1 are left out: a hint, not a reason to refuse the image."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return ()
    try:
        centers, widths = _values(ds, "WindowCenter"), _values(ds, "WindowWidth")
        explanations = (_values(ds, "WindowCenterWidthExplanation")
                        if "WindowCenterWidthExplanation" in ds else [])
    except _ATTRIBUTE_ERRORS:
        return ()
    found = []
    for index, (raw_center, raw_width) in enumerate(zip(centers, widths, strict=False)):
        try:
            center, width = float(raw_center), float(raw_width)
        except (TypeError, ValueError, OverflowError):
            continue
        if not (math.isfinite(center) and math.isfinite(width) and width >= 1):
            continue
        text = explanations[index] if index < len(explanations) else ""
        found.append((center, width, _printable(text or "")))
    return tuple(found)


def _voi_lut_explanation(ds: pydicom.Dataset) -> str | None:
    """The first VOI LUT's explanation ("" without one); None when there is no VOI LUT."""
    try:
        if "VOILUTSequence" not in ds or len(ds.VOILUTSequence) == 0:
            return None
        return _printable(ds.VOILUTSequence[0].get("LUTExplanation", "") or "")
    except _ATTRIBUTE_ERRORS:
        return None


def _modality_decimals(ds: pydicom.Dataset, stored: np.ndarray) -> int | None:
    """Decimal places that write every modality value exactly: 0 for integer stored values
    without a fractional Rescale Slope/Intercept, else the places of those decimal strings
    (at most 6); None for float pixel data or anything unreadable."""
    if stored.dtype.kind not in "ui":
        return None
    if ds.get("ModalityLUTSequence") or "RescaleSlope" not in ds or "RescaleIntercept" not in ds:
        return 0
    places = 0
    try:
        for keyword in ("RescaleSlope", "RescaleIntercept"):
            value = ds[keyword].value
            text = getattr(value, "original_string", None) or str(value)
            exponent = Decimal(str(text).strip()).normalize().as_tuple().exponent
            if not isinstance(exponent, int):
                return None
            places = max(places, -exponent)
    except (InvalidOperation, *_ATTRIBUTE_ERRORS):
        return None
    return places if places <= 6 else None


def _first_window(ds: pydicom.Dataset) -> tuple[float, float, int] | None:
    """The first Window Center/Width and how many there are; None when unreadable."""
    centers, widths = ds["WindowCenter"], ds["WindowWidth"]
    try:
        center = float(centers.value[0] if centers.VM > 1 else centers.value)
        width = float(widths.value[0] if widths.VM > 1 else widths.value)
    except (TypeError, ValueError, IndexError):
        return None
    return center, width, max(int(centers.VM), 1)


def voi_output_range(ds: pydicom.Dataset) -> tuple[float, float]:
    """The output range pydicom's windowing maps onto (for comparing and normalising)."""
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(ds.PixelRepresentation) == 0:
        y_min, y_max = 0.0, float(2**bits - 1)
    else:
        y_min, y_max = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        y_min = y_min * float(slope) + float(intercept)
        y_max = y_max * float(slope) + float(intercept)
    return y_min, y_max
