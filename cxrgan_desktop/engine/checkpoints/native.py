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
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import atomic_write_bytes
from cxrgan_desktop.core.model_errors import CheckpointError, shape_mismatches
from cxrgan_desktop.engine.checkpoints.output import OutputAdapter
from cxrgan_desktop.engine.checkpoints.validate import TensorInfo, safetensors_header
from cxrgan_desktop.engine.pggan import Discriminator, Generator, PGGANConfig

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


def is_safetensors(source: Path | bytes) -> bool:
    """safetensors files start with a little-endian u64 header length, then a JSON object.
    ``source``: a path, or a file's bytes already read."""
    if isinstance(source, bytes | bytearray | memoryview):
        head = bytes(source[:9])
    else:
        with open(source, "rb") as handle:
            head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def read_native_header(path: Path, data: bytes, fmt: str = FORMAT,
                       version: str = FORMAT_VERSION, kind: str = "PGGAN model"
                       ) -> tuple[dict[str, str], dict[str, TensorInfo]]:
    """Metadata and tensor descriptions (no tensor data) of a native file of format ``fmt``
    held in ``data``; generators and classifiers share the container, ``kind`` names what
    was expected in the error. Non-floating-point tensors are refused here, before loading."""
    metadata, infos = safetensors_header(path, data)
    if metadata.get("format") != fmt:
        raise CheckpointError(path, f"a safetensors file, but not a cxrgan-desktop {kind} "
                              f"(metadata format is {metadata.get('format')!r})")
    if metadata.get("format_version") != version:
        raise CheckpointError(path, f"{kind} format version {metadata.get('format_version')!r} "
                              f"is not supported by this version ({version}); "
                              "update cxrgan-desktop")
    return metadata, infos


def load_tensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file held in ``data`` (checked by
    :func:`read_native_header` first: the header has then been validated against the data)."""
    try:
        return safetensors_load(data)
    except (SafetensorError, ValueError, RuntimeError, TypeError) as error:
        raise CheckpointError(path, f"damaged safetensors file ({error})") from error


def native_parts(path: Path, metadata: dict[str, str]) -> tuple[PGGANConfig, OutputAdapter,
                                                                 int, float, dict[str, Any]]:
    """Architecture, adapter, growth state and provenance from the metadata, each checked
    (bounds of the config, depth within it, alpha a number in [0, 1]) before anything is
    built from them."""
    try:
        config = PGGANConfig.from_json(metadata["architecture"])
        adapter = OutputAdapter.from_json(metadata["output_adapter"])
        depth = int(metadata.get("depth", config.max_depth))
        alpha = float(metadata.get("alpha", 1.0))
        provenance = json.loads(metadata.get("provenance", "{}"))
    except (KeyError, ValueError, TypeError, RecursionError) as error:
        raise CheckpointError(path, f"model metadata is incomplete or invalid ({error})") from error
    if not 0 <= depth <= config.max_depth:
        raise CheckpointError(path, f"model metadata is invalid: depth {depth} is outside "
                              f"0..{config.max_depth} for channels {list(config.channels)}")
    if not 0.0 <= alpha <= 1.0:  # NaN fails this too
        raise CheckpointError(path, f"model metadata is invalid: alpha {alpha!r} is not a "
                              "number between 0 and 1")
    if not isinstance(provenance, dict):
        raise CheckpointError(path, "model metadata is invalid: provenance is not a JSON object")
    return config, adapter, depth, alpha, provenance


def split_prefixed(tensors: dict[Any, Any], prefix: str) -> dict[str, Any]:
    """The entries under ``prefix`` (``G.``, ``gen_shadow.``, ...), with the prefix removed
    (keys that are not strings, which a crafted pickle can hold, are never under a prefix)."""
    return {k[len(prefix):]: v for k, v in tensors.items()
            if isinstance(k, str) and k.startswith(prefix)}
