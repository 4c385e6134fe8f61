"""Installed classifiers and a classifier file's labels, without loading torch.

The GUI lists classifiers and fills its label grid from here on its own thread, so nothing
here may import torch (seconds).

A safetensors file starts with an 8-byte little-endian header length and a JSON header whose
``__metadata__`` holds the native format's strings (see ``files.py``). Reading those few
kilobytes keeps torch's import (seconds) off the GUI thread.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from cxrgan_desktop import paths
from cxrgan_desktop.imaging.chestxray14 import FINDINGS

SUFFIX = ".safetensors"
ARCHITECTURE_NAMES = ("densenet121", "densenet-small")  # densenet.ARCHITECTURES' keys

_MAX_HEADER = 100 * 1024 * 1024


def safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The ``__metadata__`` of a safetensors file, or None when the file is not one."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            return None
        (length,) = struct.unpack("<Q", head)
        if not 2 <= length <= _MAX_HEADER:
            return None
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            return None
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def classifier_labels(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Label names of a native classifier file; a PyTorch checkpoint is taken to be a
    CheXNet-style one (ChestX-ray14's 14 findings), which loading verifies later.

    Raises ``ValueError`` naming the file when it is a safetensors file of another kind.
    """
    file = Path(path)
    try:
        metadata = safetensors_metadata(file)
    except OSError as error:
        raise ValueError(f"{file}: cannot read ({error.strerror})") from error
    if metadata is None:
        return FINDINGS
    if metadata.get("format") != "cxrgan-desktop/classifier":
        raise ValueError(f"{file}: not a cxrgan-desktop classifier (format "
                         f"{metadata.get('format')!r})")
    try:
        return tuple(json.loads(metadata["spec"])["labels"])
    except (KeyError, ValueError, TypeError) as error:
        raise ValueError(f"{file}: classifier metadata is incomplete ({error})") from error


def classifiers_dir() -> Path:
    """Where trained and imported classifiers live (beside the user's generators)."""
    return paths.models_dir() / "classifiers"


def installed_classifiers() -> list[Path]:
    """Classifier files in the user's folder, by name."""
    folder = classifiers_dir()
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def resolve_classifier(name_or_path: str) -> Path:
    """A path as given, or the installed classifier of that name."""
    path = Path(name_or_path).expanduser()
    if path.exists() or path.suffix or os.sep in name_or_path:
        return path
    installed = classifiers_dir() / f"{name_or_path}{SUFFIX}"
    if installed.exists():
        return installed
    names = ", ".join(p.stem for p in installed_classifiers()) or "none installed"
    raise FileNotFoundError(f"{path}: no such file, and no installed classifier of that name "
                            f"(installed: {names})")
