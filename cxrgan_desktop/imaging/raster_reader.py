"""PNG, JPEG and TIFF (and BMP) through Pillow.

Values are normalised by the container's full range (8-bit / 255, 16-bit / 65535), so that
the project's own 16-bit PNGs read back exactly; float TIFFs by robust percentiles, after
refusing NaN or infinite values (they would become silent black or white). Colour files are
accepted only when they are grey (all channels equal, as many tools save radiographs);
anything else is refused rather than silently converted.

Only Pillow's plain raster decoders are allowed (``Image.open(..., formats=...)``): a file
named ``.png`` that is really PostScript must not reach Ghostscript. Images larger than
:data:`MAX_PIXELS` are refused before any pixel is decoded, with their size in the reason.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxrgan_desktop.imaging.image_file import (
    ImageReadError,
    LoadedImage,
    open_image_file,
    require_finite,
)
from cxrgan_desktop.imaging.windowing import apply_window, percentile_window

_GREY_TOLERANCE = 2  # JPEG chroma noise in 8-bit units still counts as grey
FORMATS = ("PNG", "JPEG", "TIFF", "BMP")
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
"""The largest image read (Pillow's own warning limit, about 9459 x 9459): radiographs are
a few thousand pixels a side; more is a mistake or a decompression bomb."""
# what Pillow's decoders raise on damaged or crafted data, besides OSError
_DECODER_ERRORS = (ValueError, SyntaxError, EOFError, struct.error, zlib.error, TypeError,
                   IndexError, KeyError, AttributeError, NotImplementedError, OverflowError)


def read_raster(path: Path, handle: BinaryIO | None = None) -> LoadedImage:
    """Read a raster image file (from ``handle`` when the caller opened it already).

    Raises :class:`ImageReadError` for damaged, unknown, colour, too large or non-finite
    images; OS errors while reading (with an errno) pass to the caller, who names them.
    """
    if handle is None:
        with open_image_file(path) as own:
            return read_raster(path, own)
    label = path.suffix.lstrip(".").upper() or "image"
    try:
        with Image.open(handle, formats=FORMATS) as img:
            file_format = img.format or label
            label = file_format
            width, height = img.size
            if width * height > MAX_PIXELS:
                raise ImageReadError(path, _too_large(width, height))
            img.load()
            mode = img.mode
            frames = getattr(img, "n_frames", 1)
            array = _as_grey_array(path, img)
    except ImageReadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        # (the warning arrives as an exception where warnings are errors)
        size = _png_size(handle)
        raise ImageReadError(path, _too_large(*size) if size else
                             f"image too large: {error}") from error
    except UnidentifiedImageError as error:
        raise ImageReadError(path, f"not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} image "
                             "(unknown type or damaged file)") from error
    except MemoryError:
        raise
    except OSError as error:
        if error.errno is not None:  # the operating system, not the data: the caller says
            raise
        raise ImageReadError(path, f"damaged {label} file ({error})") from error
    except _DECODER_ERRORS as error:  # truncated or corrupt data
        raise ImageReadError(path, f"damaged {label} file ({type(error).__name__}: "
                             f"{error})") from error
    warnings = ()
    if frames > 1:
        warnings = (f"{frames} frames/pages: only the first was read",)
    pixels, normalisation = _normalise(path, array, mode)
    return LoadedImage(pixels=pixels, source=path, file_format=file_format, photometric=mode,
                       normalisation=normalisation, warnings=warnings)


def _too_large(width: int, height: int) -> str:
    return (f"image too large: {width} x {height} pixels exceeds the limit of "
            f"{MAX_PIXELS:,} pixels")


def _png_size(handle: BinaryIO) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR (for the reason when Pillow refused to open it)."""
    try:
        handle.seek(0)
        head = handle.read(24)
    except (OSError, ValueError):
        return None
    if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return width, height
    return None


def _as_grey_array(path: Path, img: Image.Image) -> np.ndarray:
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode == "LA":
        return np.asarray(img)[..., 0]
    if img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img)[..., :3].astype(np.int16)
        spread = int((rgb.max(axis=-1) - rgb.min(axis=-1)).max())
        if spread > _GREY_TOLERANCE:
            raise ImageReadError(path, f"a colour image (channels differ by up to {spread}); "
                                 "only grayscale radiographs are supported")
        return rgb.mean(axis=-1)
    if img.mode not in ("1", "L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        raise ImageReadError(path, f"unsupported pixel mode {img.mode}; only grayscale "
                             "radiographs are supported")
    return np.asarray(img)


def _normalise(path: Path, array: np.ndarray, mode: str) -> tuple[np.ndarray, str]:
    if mode == "1":
        return array.astype(np.float32), "bilevel"
    if array.dtype == np.uint8 or mode in ("L", "RGB", "RGBA", "LA", "P"):
        return (array.astype(np.float32) / 255.0), "full range of 8 bits (value / 255)"
    if array.dtype.kind in "ui" and array.min() >= 0 and array.max() <= 65535:
        return (array.astype(np.float32) / 65535.0), "full range of 16 bits (value / 65535)"
    require_finite(path, array)
    window = percentile_window(array)
    return apply_window(array, window), (f"percentiles 0.5-99.5 of {array.dtype} values "
                                         f"(window c={window.center:g} w={window.width:g})")
