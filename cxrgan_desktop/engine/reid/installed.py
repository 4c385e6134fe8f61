"""Where installed re-identification models live, found by name without loading torch.

A user folder ``<data dir>/reid`` (``CXRGAN_DATA_DIR`` overrides the data dir): the audit's
``--reid NAME`` and ``cxrgan reid info NAME`` look there. Nothing is bundled: an embedding
trained on phantoms would say nothing about real patients.
"""

from __future__ import annotations

import os
from pathlib import Path

from cxrgan_desktop.core import paths

SUFFIX = ".safetensors"


def reid_dir() -> Path:
    """The user's re-identification models."""
    return paths.data_dir() / "reid"


def installed_reids() -> list[Path]:
    """Re-identification files in the user's folder, by name."""
    folder = reid_dir()
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def resolve_reid(name_or_path: str) -> Path:
    """A path as given, or the installed model of that name."""
    path = Path(name_or_path).expanduser()
    if path.exists() or path.suffix or os.sep in name_or_path or "/" in name_or_path:
        return path
    for candidate in installed_reids():
        if candidate.stem == name_or_path:
            return candidate
    names = ", ".join(p.stem for p in installed_reids()) or "none installed"
    raise FileNotFoundError(f"{path}: no such file, and no installed re-identification model "
                            f"of that name in {reid_dir()} (installed: {names})")
