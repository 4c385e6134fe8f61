"""Test isolation: no real home folders, no display, small torch thread pools."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # without it Qt aborts the whole run

import pytest


@pytest.fixture(autouse=True)
def isolated_user_folders(tmp_path, monkeypatch):
    """Point the data, cache and config folders at the test's own temporary folder."""
    for name in ("DATA", "CACHE", "CONFIG"):
        folder = tmp_path / f"user_{name.lower()}"
        monkeypatch.setenv(f"CXRGAN_{name}_DIR", str(folder))
    yield
