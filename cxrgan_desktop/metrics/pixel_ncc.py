"""The pixel space of the memorisation audit: small, centred, unit-norm image vectors.

A generator that memorised a training image reproduces its layout, not necessarily its
grey levels: the copy may come out brighter, darker or with more contrast. So the pixel
space compares images by normalised cross-correlation (Pearson r over pixels) of a small
version of each image: resize to ``size x size``, subtract the image's own mean, divide by
the L2 norm. The inner product of two such vectors is then their correlation, in [-1, 1],
and unchanged by any linear window/level change ``a * x + b`` with ``a > 0`` (a negative
``a``, an inverted image, gives ``-r``). Inner products are exactly what
:func:`cxrgan_desktop.metrics.nearest.nearest_neighbours` searches.

32 x 32 keeps the vectors at 1,024 floats (4 KiB an image; 460 MB for ChestX-ray14's
112,120 images) while still separating two radiographs of one patient taken at different
inspiration or position.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_SIZE = 32
# RMS of the centred small image below which an image counts as constant (zero vector): the
# float32 resize of a constant image leaves differences of a few 1e-8, while one 16-bit grey
# level is 1.5e-5; below 1e-6 there is no structure left to correlate.
CONSTANT_RMS = 1e-6
VERSION = 1


def _resized(images: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 1, size, size] float32: area averaging when shrinking (no aliasing of fine noise
    into the small image); antialiased bilinear when either side must grow."""
    height, width = images.shape[-2:]
    if height >= size and width >= size:
        return F.interpolate(images, size=(size, size), mode="area")
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)


def ncc_vectors(images: torch.Tensor, size: int = DEFAULT_SIZE) -> np.ndarray:
    """float32 [B, size * size] vectors whose inner products are normalised
    cross-correlations of the resized images; a constant image gives the zero vector.

    ``images``: [B, 1, H, W] in [0, 1] (any device; the result is on the CPU).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"expected a tensor of grey images [B, 1, H, W], got {shape}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be a whole number of at least 2 pixels, got {size!r}")
    if images.shape[0] == 0:
        return np.zeros((0, size * size), dtype=np.float32)
    with torch.no_grad():
        small = _resized(images.to(torch.float32), size)
    rows = small.reshape(small.shape[0], -1).cpu().numpy().astype(np.float64)
    if not np.isfinite(rows).all():
        raise ValueError("the images contain NaN or infinite values")
    rows -= rows.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(rows, axis=1)
    structured = norms > CONSTANT_RMS * np.sqrt(rows.shape[1])
    rows[~structured] = 0.0
    rows[structured] /= norms[structured, None]
    return rows.astype(np.float32)


def pixel_space_identity(size: int = DEFAULT_SIZE) -> dict[str, Any]:
    """Everything that decides the vectors, for feature cache keys: a change to any of it
    (or to the code, through ``version``) must not reuse vectors computed the old way."""
    return {
        "space": "pixels",
        "method": "ncc",
        "size": int(size),
        "resize": "torch area (adaptive average pooling) when shrinking; bilinear, "
                  "align_corners=False, antialias=True when either side grows",
        "compute": "resize in float32; centre and normalise in float64; stored float32",
        "constant_rms": CONSTANT_RMS,
        "version": VERSION,
    }


# the name the audit's design notes use
PIXEL_SPACE_IDENTITY = pixel_space_identity
