"""The audit's contact sheet: each synthetic image beside its nearest training image.

Why a sheet: a similarity number does not convince anyone that an image is a copy, and a
false alarm is only recognised by looking; correlation audits (Akbar et al. 2025) show the
synthetic image beside its nearest training images for the same reason. One row per pair,
most at risk first: synthetic, nearest training image, and their difference (mid-grey = 0)
where both have one size. Drawn with Pillow (8-bit, each image in its own 1st-99th percentile
window), saved as PNG and as a one-page PDF.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxrgan_desktop.core.fileio import atomic_write_bytes

Pair = tuple[np.ndarray, np.ndarray, str, str]
"""(synthetic [H, W] in [0, 1], training [H, W] in [0, 1], title, caption)"""

TILE = 256
_TEXT = 34  # pixels of caption under each row


def _windowed(image: np.ndarray) -> Image.Image:
    lo, hi = np.percentile(image, [1, 99])
    scaled = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    return Image.fromarray(np.round(scaled * 255).astype(np.uint8)).resize(
        (TILE, TILE), Image.LANCZOS)


def _difference(synthetic: np.ndarray, training: np.ndarray) -> Image.Image:
    difference = synthetic.astype(np.float32) - training.astype(np.float32)
    bound = max(float(np.abs(difference).max()), 1e-6)
    grey = np.round((difference / bound * 0.5 + 0.5) * 255).astype(np.uint8)
    return Image.fromarray(grey).resize((TILE, TILE), Image.NEAREST)


def contact_sheet(pairs: Sequence[Pair]) -> Image.Image:
    """One row per pair: synthetic | nearest training image | difference."""
    rows = max(len(pairs), 1)
    sheet = Image.new("L", (3 * TILE, rows * (TILE + _TEXT)), 255)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    if not pairs:
        draw.text((10, 10), "no synthetic images", fill=0, font=font)
    for k, (synthetic, training, title, caption) in enumerate(pairs):
        top = k * (TILE + _TEXT)
        sheet.paste(_windowed(synthetic), (0, top))
        sheet.paste(_windowed(training), (TILE, top))
        if synthetic.shape == training.shape:
            sheet.paste(_difference(synthetic, training), (2 * TILE, top))
            note = "difference (grey = 0, full scale = largest |d|)"
        else:
            note = f"sizes differ: {synthetic.shape} vs {training.shape}"
        draw.text((4, top + TILE + 2), title, fill=0, font=font)
        draw.text((4, top + TILE + 17), caption, fill=0, font=font)
        draw.text((2 * TILE + 4, top + TILE + 2), note, fill=0, font=font)
    return sheet


def encode_sheet(sheet: Image.Image, path: Path) -> bytes:
    """``sheet`` encoded for ``path``'s type (.png, or .pdf at 100 dpi), in memory: the audit
    writes it with its other files in one step."""
    kind = "PDF" if path.suffix.lower() == ".pdf" else "PNG"
    buffer = io.BytesIO()
    sheet.save(buffer, format=kind, **({"resolution": 100.0} if kind == "PDF" else {}))
    return buffer.getvalue()


def save_sheet(sheet: Image.Image, *paths: Path) -> list[Path]:
    """``sheet`` as each of ``paths`` (.png, or .pdf at 100 dpi), written atomically."""
    for path in paths:
        atomic_write_bytes(path, encode_sheet(sheet, path))
    return list(paths)
