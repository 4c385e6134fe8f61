"""Installed classifiers and a classifier file's labels, without loading torch.

The GUI lists classifiers and fills its label grid from here on its own thread, so nothing
here may import torch (seconds).

A safetensors file starts with an 8-byte little-endian header length and a JSON header whose
``__metadata__`` holds the native format's strings (see ``files.py``). Reading those few
kilobytes keeps torch's import (seconds) off the GUI thread.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrgan_desktop.core import paths, shipped
from cxrgan_desktop.labels.chestxray14 import FINDINGS

SUFFIX = ".safetensors"
DEMO_CLASSIFIER = "demo-phantom-64-classifier"  # bundled, trained on the demo's phantoms
ARCHITECTURE_NAMES = ("densenet121", "densenet-small")  # densenet.ARCHITECTURES' keys

_MAX_HEADER = 100 * 1024 * 1024

# A label whose validation AUROC is below this is not read well enough to steer LCO by: 0.5
# is chance, and CheXNet's weakest ChestX-ray14 finding (Infiltration) scored 0.73, so a
# label under 0.7 is read worse than any finding of the classifier the method was built on.
AUROC_FLOOR = 0.7


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


def bundled_classifiers_dir() -> Path:
    """The demo classifier shipped in the package (a subfolder, so that the generator list,
    which reads the folder above, never takes it for a generator)."""
    return shipped.bundled_models_dir() / "classifiers"


def user_classifiers() -> list[Path]:
    """Classifier files in the user's folder, by name."""
    folder = classifiers_dir()
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def bundled_classifiers() -> list[Path]:
    """Classifier files shipped in the package (the demo classifier), by name."""
    folder = bundled_classifiers_dir()
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def is_bundled_classifier(path: str | os.PathLike[str]) -> bool:
    return Path(path).resolve().parent == bundled_classifiers_dir().resolve()


def installed_classifiers() -> list[Path]:
    """Every usable classifier: the user's first, by name, then the bundled ones whose names
    no user file takes (so LCO works offline out of the box, and the user's own is the
    default as soon as there is one)."""
    mine = user_classifiers()
    taken = {p.stem for p in mine}
    return mine + [p for p in bundled_classifiers() if p.stem not in taken]


def default_classifier() -> Path | None:
    """The classifier LCO uses when none is named: the first of :func:`installed_classifiers`."""
    files = installed_classifiers()
    return files[0] if files else None


def resolve_classifier(name_or_path: str) -> Path:
    """A path as given, or the installed (then bundled) classifier of that name."""
    path = Path(name_or_path).expanduser()
    if path.exists() or path.suffix or os.sep in name_or_path:
        return path
    for candidate in installed_classifiers():
        if candidate.stem == name_or_path:
            return candidate
    names = ", ".join(p.stem for p in installed_classifiers()) or "none installed"
    raise FileNotFoundError(f"{path}: no such file, and no installed classifier of that name "
                            f"(installed: {names})")


@dataclass(frozen=True)
class LabelCard:
    """What a classifier's card says about one label (None: not recorded)."""

    label: str
    train_positives: int | None
    val_positives: int | None
    val_negatives: int | None
    val_auroc: float | None

    def problem(self, floor: float = AUROC_FLOOR) -> str | None:
        """Why the classifier cannot be trusted to read this label, or None."""
        if self.train_positives == 0:
            return "no positive images in its training data"
        if self.val_auroc is not None:
            if self.val_auroc < floor:
                return f"validation AUROC {self.val_auroc:.2f} is below {floor:.2f}"
            return None
        if self.val_positives == 0:
            return "no positive images in its validation data (AUROC not measurable)"
        if self.val_negatives == 0:
            return "no negative images in its validation data (AUROC not measurable)"
        return None


@dataclass(frozen=True)
class ClassifierCard:
    """Per-label training and validation counts from a classifier's provenance."""

    labels: tuple[str, ...]
    per_label: dict[str, LabelCard]
    validated: bool  # the card holds a per-label validation report

    def unreadable(self, floor: float = AUROC_FLOOR) -> dict[str, str]:
        """Label -> why the classifier cannot read it (a card without counts says nothing:
        an imported CheXNet checkpoint is not accused of anything)."""
        reasons = {}
        for name in self.labels:
            card = self.per_label.get(name)
            problem = card.problem(floor) if card is not None else None
            if problem is not None:
                reasons[name] = problem
        return reasons


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def card_from_provenance(labels: Sequence[str], provenance: Mapping[str, Any]
                         ) -> ClassifierCard:
    """Read ``train_positives`` (label -> count in the training split, recorded since
    training writes it) and ``validation.labels`` (AUROC, positives, negatives per label)."""
    train = provenance.get("train_positives")
    train = train if isinstance(train, dict) else {}
    validation = provenance.get("validation")
    rows = validation.get("labels") if isinstance(validation, dict) else None
    rows = {r.get("label"): r for r in rows if isinstance(r, dict)} \
        if isinstance(rows, list) else {}
    per_label = {}
    for name in labels:
        row = rows.get(name, {})
        auroc = row.get("auroc")
        auroc = float(auroc) if isinstance(auroc, int | float) and not isinstance(auroc, bool) \
            and math.isfinite(auroc) else None
        per_label[name] = LabelCard(name, _count(train.get(name)), _count(row.get("positives")),
                                    _count(row.get("negatives")), auroc)
    return ClassifierCard(tuple(labels), per_label, bool(rows))


def classifier_card(path: str | os.PathLike[str]) -> ClassifierCard:
    """The card of a classifier file, from its header alone (no torch); a PyTorch checkpoint
    (CheXNet import) has none, and gets an empty card. Raises ``ValueError`` as
    :func:`classifier_labels` does."""
    labels = classifier_labels(path)
    try:
        metadata = safetensors_metadata(path) or {}
        provenance = json.loads(metadata.get("provenance", "{}"))
    except (OSError, ValueError):
        provenance = {}
    return card_from_provenance(labels, provenance if isinstance(provenance, dict) else {})
