"""The native model file: one ``.safetensors`` whose metadata makes it self-describing.

Tensors: the generator's parameters under ``G.``, optionally the discriminator's under ``D.``
(fine-tuning starts from them). Metadata (all strings, as safetensors requires):
``format``, ``format_version``, ``name``, ``architecture`` (PGGANConfig JSON),
``output_adapter`` (JSON), ``depth``, ``alpha`` (growth state) and ``provenance`` (JSON: training
data, images shown, date, code version, where an import came from).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from cxrgan_desktop import __version__
from cxrgan_desktop.engine.checkpoints.errors import CheckpointError, shape_mismatches
from cxrgan_desktop.engine.checkpoints.output import OutputAdapter
from cxrgan_desktop.engine.pggan import Discriminator, Generator, PGGANConfig
from cxrgan_desktop.fileio import atomic_write_bytes

FORMAT = "cxrgan-desktop/pggan"
FORMAT_VERSION = "1"
_GROWTH_BUFFERS = ("depth", "alpha")


def parameters_only(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict without the growth buffers (they travel as metadata)."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()
            if k not in _GROWTH_BUFFERS}


def mismatches_with(module: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Every missing, unexpected or differently shaped key of ``state`` against ``module``'s
    parameters (growth buffers aside); empty when the state loads exactly."""
    expected = {k: tuple(v.shape) for k, v in parameters_only(module).items()}
    return shape_mismatches(expected, {k: tuple(v.shape) for k, v in state.items()})


def save_generator(path: str | os.PathLike[str], generator: Generator, adapter: OutputAdapter,
                   name: str, provenance: dict[str, Any] | None = None,
                   discriminator: Discriminator | None = None) -> Path:
    """Write a native model file atomically; returns its path."""
    tensors = {f"G.{k}": v for k, v in parameters_only(generator).items()}
    if discriminator is not None:
        tensors.update({f"D.{k}": v for k, v in parameters_only(discriminator).items()})
    record = {"code_version": __version__,
              "saved": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    record.update(provenance or {})
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "architecture": generator.config.to_json(),
        "output_adapter": adapter.to_json(),
        "depth": str(generator.current_depth),
        "alpha": repr(float(generator.alpha)),
        "provenance": json.dumps(record, sort_keys=True),
    }
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata=metadata))
    return Path(path)


def is_safetensors(path: Path) -> bool:
    """safetensors files start with a little-endian u64 header length, then a JSON object."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def read_native(path: Path, fmt: str = FORMAT, version: str = FORMAT_VERSION,
                kind: str = "PGGAN model") -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Metadata and tensors of a native file of format ``fmt`` (generators and classifiers
    share the container; ``kind`` names what was expected in the error)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(path, f"damaged safetensors file ({error})") from error
    if metadata.get("format") != fmt:
        raise CheckpointError(path, f"a safetensors file, but not a cxrgan-desktop {kind} "
                              f"(metadata format is {metadata.get('format')!r})")
    if metadata.get("format_version") != version:
        raise CheckpointError(path, f"{kind} format version {metadata.get('format_version')!r} "
                              f"is not supported by this version ({version}); "
                              "update cxrgan-desktop")
    return metadata, tensors


def native_parts(path: Path, metadata: dict[str, str]) -> tuple[PGGANConfig, OutputAdapter,
                                                                 int, float, dict[str, Any]]:
    """Architecture, adapter, growth state and provenance from the metadata."""
    try:
        config = PGGANConfig.from_json(metadata["architecture"])
        adapter = OutputAdapter.from_json(metadata["output_adapter"])
        depth = int(metadata.get("depth", config.max_depth))
        alpha = float(metadata.get("alpha", 1.0))
        provenance = json.loads(metadata.get("provenance", "{}"))
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(path, f"model metadata is incomplete or invalid ({error})") from error
    return config, adapter, depth, alpha, provenance


def split_prefixed(tensors: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The entries under ``prefix`` (``G.``, ``gen_shadow.``, ...), with the prefix removed."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
