"""One identity for an image's pixels, whatever file or format carries them.

Why: an audit flags *images*, and the commands that must leave flagged images out (archive,
reader-study build, DICOM export, the window's export) meet those images again as other
files: a renamed copy, a DICOM made from the same array, the array still in memory. Hashing
the pixels as lossless storage holds them (16 bits, ``round(65535 x)``, the quantisation of
:func:`~cxrgan_desktop.imaging.png16.to_uint16`) gives every one of them the same identity: a
16-bit PNG read back (value / 65535) or an 8-bit one (value / 255) quantises to the same
integers it was made from. File hashes would not, because metadata (dates, UIDs) differs.
"""

from __future__ import annotations

import hashlib

import numpy as np

from cxrgan_desktop.imaging.png16 import to_uint16


def pixel_sha256(image: np.ndarray) -> str:
    """SHA-256 (hex) of a ``[H, W]`` image in [0, 1]: its size, then its 16-bit values
    (big-endian), so the same pixels give the same hash on every machine."""
    array = np.asarray(image)
    if array.ndim != 2:
        raise ValueError(f"pixel_sha256 needs one [H, W] image, got shape {array.shape}")
    digest = hashlib.sha256(f"{array.shape[0]}x{array.shape[1]}:".encode())
    digest.update(to_uint16(array).astype(">u2").tobytes())
    return digest.hexdigest()
