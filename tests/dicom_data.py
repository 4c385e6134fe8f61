"""Real DICOM test files that nobody here wrote: pydicom's own and the pydicom-data package."""

from __future__ import annotations

from pathlib import Path

import pytest


def real_dicom(name: str) -> Path:
    """Path of a pydicom test file, never downloaded; skips the test if it is absent."""
    data = pytest.importorskip("pydicom.data")
    path = data.get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not available: pip install pydicom-data (a test dependency)")
    return Path(path)


def require_decoder(name: str) -> None:
    """Skip (not pass) a test whose file needs a codec that is not installed."""
    import pydicom
    from pydicom.pixels import get_decoder

    syntax = pydicom.dcmread(real_dicom(name), stop_before_pixels=True).file_meta.TransferSyntaxUID
    if syntax.is_compressed and not get_decoder(syntax).is_available:
        pytest.skip(f"no decoder for {syntax.name}: pip install 'cxrgan-desktop[dicom-codecs]'")
