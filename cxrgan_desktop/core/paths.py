"""Where user data, caches and settings live: platformdirs, overridable by environment
variables (CXRGAN_DATA_DIR, CXRGAN_CACHE_DIR, CXRGAN_CONFIG_DIR) so tests and portable
installs never touch the real home folder."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "cxrgan-desktop"


def _folder(env: str, default: str) -> Path:
    override = os.environ.get(env)
    return Path(override).expanduser() if override else Path(default)


def data_dir() -> Path:
    return _folder("CXRGAN_DATA_DIR", platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    return _folder("CXRGAN_CACHE_DIR", platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    return _folder("CXRGAN_CONFIG_DIR", platformdirs.user_config_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """The user's installed models (imports and locally trained ones)."""
    return data_dir() / "models"
