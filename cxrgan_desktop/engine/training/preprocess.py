"""Preprocessing of one training image: square it, resize to the cache's top resolution with
an antialiased filter, and derive every lower power of two by exact 2x2 means.

Kept apart from the cache's bookkeeping so that its arithmetic can be read (and tested) alone.
Changing anything here must bump ``image_cache.CACHE_FORMAT`` so that old caches rebuild.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

RESIZE_METHOD = "square, Pillow LANCZOS on float32 to max_resolution, then exact 2x2 means"
SQUARE_MODES = ("crop", "pad")
MIN_RESOLUTION = 4


def resolutions_up_to(max_resolution: int) -> tuple[int, ...]:
    """4, 8, ..., max_resolution; raises ``ValueError`` unless it is a power of two >= 4."""
    r = int(max_resolution)
    if r != max_resolution or r < MIN_RESOLUTION or r & (r - 1):
        raise ValueError(f"max_resolution must be a power of two >= {MIN_RESOLUTION}, "
                         f"got {max_resolution}")
    return tuple(MIN_RESOLUTION << k for k in range(r.bit_length() - MIN_RESOLUTION.bit_length()
                                                      + 1))


def storage_dtype(bit_depth: int) -> np.dtype:
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    return np.dtype(np.uint8 if bit_depth == 8 else np.uint16)


# -- preprocessing ----------------------------------------------------------------------------

def make_square(pixels: np.ndarray, square: str) -> np.ndarray:
    """[H, W] -> [S, S]: centre crop to the shorter side, or black-pad to the longer one."""
    h, w = pixels.shape
    if h == w:
        return pixels
    if square == "crop":
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        return pixels[top:top + s, left:left + s]
    if square == "pad":
        s = max(h, w)
        out = np.zeros((s, s), dtype=pixels.dtype)
        top, left = (s - h) // 2, (s - w) // 2
        out[top:top + h, left:left + w] = pixels
        return out
    raise ValueError(f"square must be one of {SQUARE_MODES}, got {square!r}")


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """[S, S] float in [0, 1] -> [size, size] float32 in [0, 1] (Lanczos, antialiased)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    if pixels.shape == (size, size):
        return pixels
    image = Image.fromarray(pixels)  # mode "F"
    out = np.asarray(image.resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)  # Lanczos rings slightly past the input range


def pyramid(top: np.ndarray) -> list[np.ndarray]:
    """[R, R] -> [top, its 2x2 means, ...] down to 4 px (float32, largest first)."""
    levels = [top.astype(np.float32, copy=False)]
    while levels[-1].shape[0] > MIN_RESOLUTION:
        x = levels[-1].astype(np.float64)
        s = x.shape[0] // 2
        levels.append(x.reshape(s, 2, s, 2).mean(axis=(1, 3)).astype(np.float32))
    return levels


def quantise(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """[0, 1] floats -> uint8 round(255 x) or uint16 round(65535 x)."""
    dtype = storage_dtype(bit_depth)
    full = float(np.iinfo(dtype).max)
    return np.round(np.clip(pixels, 0.0, 1.0) * full).astype(dtype)


def preprocess(pixels: np.ndarray, max_resolution: int, square: str = "crop"
               ) -> list[np.ndarray]:
    """One image's cache entry: float32 [R, R] arrays for R = max_resolution, ..., 4."""
    return pyramid(resize_square(make_square(pixels, square), max_resolution))


# -- the cache --------------------------------------------------------------------------------
