"""Where the files that ship with the application are: ``resources/`` (icons, style sheets,
help texts, training presets, the phantom's label statistics) and ``models/`` (model cards
and the bundled demo weights).

Why a lookup: both folders sit at the top of a source checkout, beside the package, but an
installed wheel and the PyInstaller bundle carry them inside it (``cxrgan_desktop/resources``,
``cxrgan_desktop/models``; see ``[tool.setuptools.package-dir]`` and the bundle's spec). The
same call finds them in all three, whatever the working directory.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
FOLDERS = ("resources", "models")


class ShippedFilesMissing(FileNotFoundError):
    """The installation lacks its data folders: a broken wheel or bundle, or a checkout
    whose ``resources/`` or ``models/`` was removed."""


def _has_files(folder: Path) -> bool:
    """A folder left behind by an older checkout holds at most a ``__pycache__``."""
    return folder.is_dir() and any(p.name != "__pycache__" for p in folder.iterdir())


def shipped_dir(name: str) -> Path:
    if name not in FOLDERS:
        raise ValueError(f"unknown shipped folder {name!r}; one of {FOLDERS}")
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if _has_files(candidate):
            return candidate
    raise ShippedFilesMissing(
        f"the application's {name}/ folder is missing (looked in {PACKAGE_DIR / name} and "
        f"{PACKAGE_DIR.parent / name}); reinstall cxrgan-desktop")


def resource_path(*parts: str) -> Path:
    """A file under ``resources/``, e.g. ``resource_path("icons", "cxrgan-desktop.svg")``."""
    return shipped_dir("resources").joinpath(*parts)


def read_resource_text(*parts: str) -> str:
    return resource_path(*parts).read_text(encoding="utf-8")


def bundled_models_dir() -> Path:
    """Model cards (and small weights) shipped with the application."""
    return shipped_dir("models")
