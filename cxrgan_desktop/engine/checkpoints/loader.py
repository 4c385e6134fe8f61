"""One entry point for every generator file the application accepts."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cxrgan_desktop.engine.checkpoints import native, restricted_pickle, segal
from cxrgan_desktop.engine.checkpoints.errors import (
    CheckpointError,
    UnsafeCheckpointError,
)
from cxrgan_desktop.engine.checkpoints.output import PAPER_ADAPTER, OutputAdapter
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.fileio import sha256_file


@dataclass
class LoadedGenerator:
    """A generator ready to render, with what is known about where it came from."""

    generator: Generator
    adapter: OutputAdapter
    path: Path
    sha256: str
    name: str
    source_format: str
    provenance: dict[str, Any] = field(default_factory=dict)
    discriminator_state: dict[str, torch.Tensor] | None = None

    @property
    def config(self) -> PGGANConfig:
        return self.generator.config

    @property
    def resolution(self) -> int:
        return self.generator.resolution


def load_generator(path: str | os.PathLike[str]) -> LoadedGenerator:
    """Open a native ``.safetensors`` model or a PyTorch checkpoint in the paper's layout.

    Raises :class:`CheckpointError` (naming the file, and the keys and shapes where they
    mismatch) for anything that is not a usable generator, and
    :class:`UnsafeCheckpointError` for a pickle that asks to run code.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(file, "no such file")
    digest = sha256_file(file)
    if native.is_safetensors(file):
        return _load_native(file, digest)
    state = _unwrap(read_torch_file(file), file)
    if not segal.looks_like_segal(state):
        keys = sorted(k for k in state if isinstance(k, str))
        raise CheckpointError(file, "not a PGGAN generator this application knows: neither a "
                              "cxrgan-desktop .safetensors model nor the layout of Segal et al.'s "
                              "released generator", [f"contains key {k}" for k in keys[:12]])
    try:
        imported = segal.import_segal(state)
    except segal.LayoutError as error:
        raise CheckpointError(file, str(error), error.details) from error
    generator = _build(file, imported.config, imported.generator_state,
                       imported.depth, imported.alpha)
    return LoadedGenerator(
        generator=generator, adapter=PAPER_ADAPTER, path=file, sha256=digest,
        name=file.stem, source_format=f"Segal et al. 2020 PGGAN ({imported.source})",
        provenance={"imported_from": file.name, "imported_sha256": digest,
                    "training_data": "NIH ChestX-ray14 (Segal et al. 2020), as released"},
        discriminator_state=imported.discriminator_state)


def _load_native(file: Path, digest: str) -> LoadedGenerator:
    metadata, tensors = native.read_native(file)
    config, adapter, depth, alpha, provenance = native.native_parts(file, metadata)
    generator = _build(file, config, native.split_prefixed(tensors, "G."), depth, alpha)
    d_state = native.split_prefixed(tensors, "D.") or None
    return LoadedGenerator(generator=generator, adapter=adapter, path=file, sha256=digest,
                           name=metadata.get("name") or file.stem, source_format="native",
                           provenance=provenance, discriminator_state=d_state)


def _build(file: Path, config: PGGANConfig, state: dict[str, torch.Tensor], depth: int,
           alpha: float) -> Generator:
    """Instantiate the architecture and load the tensors strictly, naming any mismatch."""
    generator = Generator(config, depth=depth)
    generator.set_alpha(min(max(alpha, 0.0), 1.0))
    problems = native.mismatches_with(generator, state)
    if problems:
        raise CheckpointError(file, f"the weights do not fit the architecture they declare "
                              f"({config.max_resolution}x{config.max_resolution}, channels "
                              f"{list(config.channels)}, latent {config.latent_size})", problems)
    generator.load_state_dict(state, strict=False)
    return generator.eval()


def read_torch_file(file: Path) -> Any:
    """torch.load with weights_only; for harmless extras, the restricted unpickler. Never more."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # refused by the weights-only allow-list: try ours, which knows record types
    except Exception as error:  # a damaged file can fail in any layer of the parser
        raise CheckpointError(file, f"not a readable PyTorch checkpoint ({error})") from error
    try:
        return torch.load(file, map_location="cpu", weights_only=False,
                          pickle_module=restricted_pickle)
    except restricted_pickle.RefusedGlobal as error:
        raise UnsafeCheckpointError(
            file, f"refused: the file's pickle asks to import {error.qualified_name}, which is "
            "not plain data. Model files may hold only tensors and plain values; nothing in "
            "this file was run. Obtain the weights from a trusted source.") from error
    except Exception as error:  # as above: report, never crash, on a damaged file
        raise CheckpointError(file, f"not a readable PyTorch checkpoint ({error})") from error


def _unwrap(obj: Any, file: Path) -> dict[str, Any]:
    """Descend through ``{'state_dict': ...}`` containers to the tensors."""
    for _ in range(3):
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            obj = obj["state_dict"]
        else:
            break
    if not isinstance(obj, dict):
        raise CheckpointError(file, f"expected a state dict, found a {type(obj).__name__}")
    return obj
