"""PNG, JPEG and TIFF through Pillow.

Values are normalised by the container's full range (8-bit / 255, 16-bit / 65535), so that
the project's own 16-bit PNGs read back exactly; float TIFFs by robust percentiles. Colour
files are accepted only when they are grey (all channels equal, as many tools save
radiographs); anything else is refused rather than silently converted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cxrgan_desktop.imaging.readers import ImageReadError, LoadedImage
from cxrgan_desktop.imaging.windowing import apply_window, percentile_window

_GREY_TOLERANCE = 2  # JPEG chroma noise in 8-bit units still counts as grey


def read_raster(path: Path) -> LoadedImage:
    try:
        with Image.open(path) as img:
            img.load()
            file_format = img.format or path.suffix.lstrip(".").upper()
            mode = img.mode
            frames = getattr(img, "n_frames", 1)
            array = _as_grey_array(path, img)
    except ImageReadError:
        raise
    except UnidentifiedImageError as error:
        raise ImageReadError(path, "not an image Pillow can identify (unknown or damaged "
                             "file)") from error
    except (OSError, ValueError, SyntaxError) as error:  # truncated or corrupt data
        raise ImageReadError(path, f"damaged {path.suffix.lstrip('.').upper()} file "
                             f"({error})") from error
    warnings = ()
    if frames > 1:
        warnings = (f"{frames} frames/pages: only the first was read",)
    pixels, normalisation = _normalise(array, mode)
    return LoadedImage(pixels=pixels, source=path, file_format=file_format, photometric=mode,
                       normalisation=normalisation, warnings=warnings)


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


def _normalise(array: np.ndarray, mode: str) -> tuple[np.ndarray, str]:
    if mode == "1":
        return array.astype(np.float32), "bilevel"
    if array.dtype == np.uint8 or mode in ("L", "RGB", "RGBA", "LA", "P"):
        return (array.astype(np.float32) / 255.0), "full range of 8 bits (value / 255)"
    if array.dtype.kind in "ui" and array.min() >= 0 and array.max() <= 65535:
        return (array.astype(np.float32) / 65535.0), "full range of 16 bits (value / 65535)"
    window = percentile_window(array)
    return apply_window(array, window), (f"percentiles 0.5-99.5 of {array.dtype} values "
                                         f"(window c={window.center:g} w={window.width:g})")
