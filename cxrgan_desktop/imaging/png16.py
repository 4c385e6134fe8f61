"""PNG files: lossless 16-bit grayscale (the project's storage format for single images)
and 8-bit display bytes (windowed views, sample grids)."""

from __future__ import annotations

import io
import os

import numpy as np
from PIL import Image

from cxrgan_desktop.core.fileio import atomic_write_bytes


def to_uint16(image: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint16 with value round(65535 * pixel); out-of-range values are clipped."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {array.shape}")
    return np.round(np.clip(array, 0.0, 1.0) * 65535.0).astype(np.uint16)


def encode_png16(image: np.ndarray) -> bytes:
    """Encode a [0, 1] float image (H x W) as 16-bit grayscale PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint16(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png16(path: str | os.PathLike[str], image: np.ndarray) -> None:
    """Write a [0, 1] float image as a 16-bit grayscale PNG, atomically."""
    atomic_write_bytes(path, encode_png16(image))


def write_png8(path: str | os.PathLike[str], data: np.ndarray) -> None:
    """Write display bytes ([H, W] uint8: a windowed view, a sample grid) as PNG, atomically."""
    if data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f"expected a 2-D uint8 array, got {data.dtype} {data.shape}")
    buffer = io.BytesIO()
    Image.fromarray(data).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def read_png16(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a 16-bit (or 8-bit) grayscale PNG back into a float32 [0, 1] array.

    The full reader for every format (DICOM, JPEG, RGB PNGs) belongs to the DICOM/image issue;
    this one serves round trips of files the project wrote itself.
    """
    with Image.open(path) as img:
        array = np.asarray(img)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype in (np.uint16, np.int32, np.uint32):
        return array.astype(np.float32) / 65535.0
    raise ValueError(f"{path}: unsupported PNG pixel type {array.dtype}")
