"""The one path every study image takes, real or synthetic, so that nothing but the
anatomy differs between the classes.

1. Quantise to the study's bit depth. Real radiographs arrive as stored integers (8-bit for
   ChestX-ray14's PNGs); a generator's output is continuous. Without this step the real
   images' histograms would be combed after the contrast stretch and the synthetic ones
   smooth: a difference any reader who opens a histogram can see.
2. Centre-crop to a square (generators make squares; padding would mark the real images).
3. Resize to the study size with PIL's bicubic filter (antialiased when shrinking), on float
   data, for every image, even one already at that size.
4. Stretch robust percentiles (0.5 and 99.5) to the full range and clip: the same contrast
   normalisation for all.
5. Quantise again to the study's bit depth; store as uint16 (one dtype, one header for all).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

LOW_PERCENTILE, HIGH_PERCENTILE = 0.5, 99.5


def quantise(pixels: np.ndarray, max_level: int) -> np.ndarray:
    return np.round(np.clip(pixels, 0.0, 1.0) * max_level).astype(np.float32) / max_level


def centre_square(pixels: np.ndarray) -> np.ndarray:
    height, width = pixels.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return pixels[top:top + side, left:left + side]


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)


def stretch(pixels: np.ndarray) -> np.ndarray:
    low, high = np.percentile(pixels, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if high - low < 1e-6:
        return np.zeros_like(pixels)
    return np.clip((pixels - low) / (high - low), 0.0, 1.0)


def prepare_case(pixels: np.ndarray, size: int, bit_depth: int) -> np.ndarray:
    """[H, W] float in [0, 1] (library convention) -> [size, size] uint16 levels."""
    if pixels.ndim != 2:
        raise ValueError(f"expected a grey image [H, W], got shape {pixels.shape}")
    max_level = (1 << bit_depth) - 1
    stored = quantise(np.asarray(pixels, np.float32), max_level)
    shown = stretch(resize(centre_square(stored), size))
    return np.round(shown * max_level).astype(np.uint16)
