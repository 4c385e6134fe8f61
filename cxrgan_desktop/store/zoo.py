"""Known models (cards shipped with the package), the user's installed models and the small
bundled demo model.

A model name given to the CLI or the GUI resolves, in order: an existing file path; an
installed model's name (file stem in the user's models folder); a bundled model's name (the
demo weights beside the cards, so that an offline first run has something to generate from).
A user's model of the same name hides a bundled one, and a user's model comes first wherever
a default is chosen: the demo is the fallback, never a surprise over the user's own.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrgan_desktop.core import paths, shipped
from cxrgan_desktop.core.names import printable

log = logging.getLogger(__name__)

MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt")
DEMO_MODEL = "demo-phantom-64"  # the bundled generator (its card and weights share the name)


class ModelNotFoundError(LookupError):
    pass


@dataclass(frozen=True)
class ModelCard:
    """A model's card (one JSON file in the package's models folder).

    ``kind`` is "generator" or "classifier"; ``training`` (exact commands, config, wall time,
    hardware) and ``evaluation`` (measured figures) are free-form records a bundled model
    carries so that its numbers can be checked and reproduced; ``limitations`` says what the
    model must not be used for.
    """

    id: str
    name: str
    kind: str = "generator"
    description: str = ""
    licence: str = ""
    citation: str = ""
    training_data: str = ""
    limitations: str = ""
    architecture: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path) -> ModelCard:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class InstalledModel:
    name: str
    path: Path
    size_bytes: int
    card: ModelCard | None
    bundled: bool = False  # shipped inside the package: read-only, never removed


def known_cards() -> list[ModelCard]:
    cards = []
    for path in sorted(shipped.bundled_models_dir().glob("*.json")):
        try:
            cards.append(ModelCard.from_file(path))
        except (ValueError, TypeError) as error:
            log.warning("ignoring unreadable model card %s: %s", path, error)
    return cards


def _weights_in(folder: Path, cards: dict[str, ModelCard], bundled: bool
                ) -> list[InstalledModel]:
    if not folder.is_dir():
        return []
    return [InstalledModel(path.stem, path, path.stat().st_size, cards.get(path.stem), bundled)
            for path in sorted(folder.iterdir())
            if path.suffix in MODEL_SUFFIXES and path.is_file()]


def user_models() -> list[InstalledModel]:
    """Generators in the user's models folder only (imported, downloaded or trained there):
    what decides whether the first-run welcome offers the ways to get a real model."""
    cards = {card.id: card for card in known_cards()}
    return _weights_in(paths.models_dir(), cards, bundled=False)


def bundled_models() -> list[InstalledModel]:
    """Generator weights shipped beside the cards (the demo model)."""
    cards = {card.id: card for card in known_cards()}
    return _weights_in(shipped.bundled_models_dir(), cards, bundled=True)


def installed_models() -> list[InstalledModel]:
    """Every usable generator: the user's models first, then the bundled ones whose names no
    user model takes (classifiers live in a subfolder and are not listed here)."""
    mine = user_models()
    taken = {m.name for m in mine}
    return mine + [m for m in bundled_models() if m.name not in taken]


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """A path to a weights file, from a path or an installed model's name."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return candidate
    installed = {m.name: m for m in installed_models()}
    if str(name_or_path) in installed:
        return installed[str(name_or_path)].path
    names = ", ".join(sorted(installed)) or "none installed yet"
    card_ids = {card.id for card in known_cards()}
    hint = ""
    if str(name_or_path) in card_ids:
        hint = (f" The model {name_or_path!r} is known but its weights are not installed: "
                f"'cxrgan import-model --download {name_or_path}' fetches them, or import a "
                f"copy with 'cxrgan import-model FILE --name {name_or_path}'.")
    raise ModelNotFoundError(f"no model file or installed model named {str(name_or_path)!r} "
                             f"(installed: {names}).{hint}")


def default_model() -> Path | None:
    """The model the app and `cxrgan generate` use when none is named: the user's first
    installed model, else the bundled demo (None only when a build ships without it)."""
    models = installed_models()
    return models[0].path if models else None


def model_details(path: Path) -> dict[str, Any]:
    """What a model card shows about a weights file: architecture and provenance from a native
    file's metadata (no tensors are loaded), size and SHA-256 for any file."""
    from cxrgan_desktop.core.fileio import sha256_file
    from cxrgan_desktop.engine.checkpoints import native
    from cxrgan_desktop.engine.pggan import PGGANConfig

    details: dict[str, Any] = {"file": str(path), "size_mb": round(path.stat().st_size / 1e6, 1),
                               "sha256": sha256_file(path)}
    if not native.is_safetensors(path):
        details["format"] = "PyTorch checkpoint (the architecture is read when it is opened)"
        return details
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    details["format"] = f"native {metadata.get('format', '?')} v{metadata.get('format_version')}"
    details["name"] = printable(metadata.get("name", path.stem))
    if "architecture" in metadata:
        config = PGGANConfig.from_json(metadata["architecture"])
        details.update(resolution=config.max_resolution, latent_size=config.latent_size,
                       channels=list(config.channels), image_channels=config.image_channels)
    if "provenance" in metadata:
        details["provenance"] = json.loads(metadata["provenance"])
    return details


# Adam's moments, the EMA copy and the discriminator ride along in a training checkpoint: the
# generator four times (weights, EMA, two moments) and the discriminator three times is the
# most a file of weights holds. Float weights hardly compress (about 1.1:1 in a zip), so 100:1
# is far beyond any real archive of them and typical of a decompression bomb.
UNPACK_RATIO_LIMIT = 100.0
_PAPER_LATENT = 512
_PAPER_WIDTHS = (512, 512, 512, 512, 256, 128, 64, 32, 16)


def pggan_parameter_count(latent_size: int, channels: list[int] | tuple[int, ...],
                          image_channels: int = 3) -> tuple[int, int]:
    """(generator, discriminator) parameter counts of the paper's PGGAN layout, by formula
    (no torch import: this bounds a download before anything is unpacked)."""
    c = [int(w) for w in channels]
    g = 16 * c[0] * (latent_size + 1) + 9 * c[0] ** 2 + c[0]
    d = 9 * (c[0] + 1) * c[0] + c[0] + 16 * c[0] ** 2 + c[0] + c[0] + 1
    for low, high in itertools.pairwise(c):
        g += 9 * low * high + high + 9 * high ** 2 + high
        d += 9 * high * low + low + 9 * low ** 2 + low
    g += sum((w + 1) * image_channels for w in c)
    d += sum((image_channels + 1) * w for w in c)
    return g, d


def unpacked_size_limit(card: ModelCard) -> int:
    """The most bytes a download of ``card``'s weights may unpack to: the card's
    ``source.size_bytes`` x 1.5 when it records one, else the largest training checkpoint of
    its architecture (float32) x 1.25; plus 64 MiB for containers and extras."""
    margin = 64 * 1024**2
    size = card.source.get("size_bytes")
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return int(size * 1.5) + margin
    arch = card.architecture
    try:
        g, d = pggan_parameter_count(int(arch.get("latent_size", _PAPER_LATENT)),
                                     arch.get("channels") or _PAPER_WIDTHS)
    except (TypeError, ValueError):
        g, d = pggan_parameter_count(_PAPER_LATENT, _PAPER_WIDTHS)
    return int(4 * (4 * g + 3 * d) * 1.25) + margin


def remove_installed(path: Path) -> None:
    """Delete a model from the user's models folder (never a bundled one)."""
    folder = paths.models_dir().resolve()
    if path.resolve().parent != folder:
        raise ValueError(f"{path} is not in your models folder ({folder}); not removed")
    path.unlink()
