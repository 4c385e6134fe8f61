"""One entry point for every generator file the application accepts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cxrgan_desktop.core.model_errors import CheckpointError, failures_named
from cxrgan_desktop.core.names import printable
from cxrgan_desktop.core.torch_files import read_model_bytes, read_torch_file
from cxrgan_desktop.engine.checkpoints import native, segal
from cxrgan_desktop.engine.checkpoints.output import PAPER_ADAPTER, OutputAdapter
from cxrgan_desktop.engine.checkpoints.validate import (
    check_generator_shapes,
    check_values,
    refuse_non_float_header,
)
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig


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

    The file is read once: the SHA-256 recorded is that of the bytes parsed. The architecture
    is checked against the tensors present, and the values for type, finiteness and
    magnitude, before a network is built. Raises :class:`CheckpointError` (naming the file,
    and the keys and shapes where they mismatch) for anything that is not a usable generator,
    and :class:`UnsafeCheckpointError` for a pickle that asks to run code.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(file, "no such file")
    data, digest = read_model_bytes(file)
    with failures_named(file, "model", "generator"):
        if native.is_safetensors(data):
            return _load_native(file, data, digest)
        return _load_paper_layout(file, data, digest)


def _load_paper_layout(file: Path, data: bytes, digest: str) -> LoadedGenerator:
    state = _unwrap(read_torch_file(file, data), file)
    if not segal.looks_like_segal(state):
        keys = sorted(k for k in state if isinstance(k, str))
        raise CheckpointError(file, "not a PGGAN generator this application knows: neither a "
                              "cxrgan-desktop .safetensors model nor the layout of Segal et al.'s "
                              "released generator", [f"contains key {k}" for k in keys[:12]])
    try:
        imported = segal.import_segal(state)
    except segal.LayoutError as error:
        raise CheckpointError(file, str(error), error.details) from error
    check_generator_shapes(file, imported.config, {k: tuple(v.shape) for k, v
                                                   in imported.generator_state.items()})
    generator = _build(file, imported.config, imported.generator_state,
                       imported.depth, imported.alpha)
    check_values(file, imported.discriminator_state or {})
    return LoadedGenerator(
        generator=generator, adapter=PAPER_ADAPTER, path=file, sha256=digest,
        name=printable(file.stem), source_format=f"Segal et al. 2020 PGGAN ({imported.source})",
        provenance={"imported_from": file.name, "imported_sha256": digest,
                    "training_data": "NIH ChestX-ray14 (Segal et al. 2020), as released"},
        discriminator_state=imported.discriminator_state)


def _load_native(file: Path, data: bytes, digest: str) -> LoadedGenerator:
    metadata, infos = native.read_native_header(file, data)
    config, adapter, depth, alpha, provenance = native.native_parts(file, metadata)
    refuse_non_float_header(file, infos)
    # the generator's shapes against the declared architecture, from the header alone: a
    # file claiming huge widths is refused before its tensors or any layer exist
    check_generator_shapes(file, config, {k[2:]: info.shape for k, info in infos.items()
                                          if k.startswith("G.")})
    tensors = native.load_tensors(file, data)
    d_state = native.split_prefixed(tensors, "D.") or None
    check_values(file, d_state or {})
    generator = _build(file, config, native.split_prefixed(tensors, "G."), depth, alpha)
    # a name is shown in terminals, windows, manifests and DICOM headers: control
    # characters from the file are escaped here, once, for all of them
    return LoadedGenerator(generator=generator, adapter=adapter, path=file, sha256=digest,
                           name=printable(metadata.get("name") or file.stem),
                           source_format="native", provenance=provenance,
                           discriminator_state=d_state)


def _build(file: Path, config: PGGANConfig, state: dict[str, torch.Tensor], depth: int,
           alpha: float) -> Generator:
    """Instantiate the architecture and load the tensors strictly, naming any mismatch.

    The caller has checked the shapes against the architecture (from a native file's header,
    or from a paper-layout file's tensors), so the network built is never larger than the
    tensors the file really holds; values are checked here, so it never holds NaN,
    infinities or integers."""
    check_values(file, state)
    if not 0 <= depth <= config.max_depth or not 0.0 <= alpha <= 1.0:
        raise CheckpointError(file, f"invalid growth state: depth {depth} (0..{config.max_depth}"
                              f" allowed), alpha {alpha!r} (0..1 allowed)")
    generator = Generator(config, depth=depth)
    generator.set_alpha(alpha)
    problems = native.mismatches_with(generator, state)
    if problems:  # cannot happen while generator_shapes matches the module; kept as a guard
        raise CheckpointError(file, "the weights do not fit the architecture", problems)
    generator.load_state_dict(state, strict=False)
    return generator.eval()


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
