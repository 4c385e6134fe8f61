"""Re-identification files: one ``.safetensors`` with the network and what it was trained on.

Metadata: ``format``, ``format_version``, ``spec`` (:class:`ReidSpec` JSON) and
``provenance`` (training data description and fingerprint, images, patients, epochs, the
held-out verification AUROC and precision@1, date, code version). Loading reads the file
once, hashes exactly the bytes it parses, never unpickles anything, and compares the tensors'
shapes with the declared network (built on the meta device, which allocates nothing) before a
real one is built, as the classifier and generator loaders do. The SHA-256 is part of the
embedding's identity: a feature cache keyed by it cannot mix two networks' vectors.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import atomic_write_bytes
from cxrgan_desktop.core.model_errors import CheckpointError, failures_named, shape_mismatches
from cxrgan_desktop.core.torch_files import read_model_bytes
from cxrgan_desktop.engine.checkpoints import native
from cxrgan_desktop.engine.checkpoints.validate import check_values, refuse_non_float_header
from cxrgan_desktop.engine.reid.model import ReidNet, ReidSpec

FORMAT = "cxrgan-desktop/reid"
FORMAT_VERSION = "1"
KIND = "re-identification model"


@dataclass
class LoadedReid:
    """A re-identification network in eval mode, with the file it came from."""

    network: ReidNet
    spec: ReidSpec
    path: Path
    sha256: str
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> dict[str, Any]:
        """What makes two embeddings comparable: for feature-cache keys."""
        return {"space": "reid", "weights_sha256": self.sha256,
                "input_size": self.spec.input_size, "embedding_dim": self.spec.embedding_dim}

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """Unit-norm embeddings ``[B, embedding_dim]`` float32 of images ``[B, 1, H, W]`` in
        [0, 1], on the network's device, in eval mode (batch-norm running statistics, so an
        image's vector does not depend on the others in its batch)."""
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"expected [B, 1, H, W] images, got {tuple(images.shape)}")
        self.network.eval()
        device = next(self.network.parameters()).device
        out = [self.network(images[start:start + batch_size].to(device)).float().cpu().numpy()
               for start in range(0, images.shape[0], batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.spec.embedding_dim),
                                                        np.float32)


def save_reid(path: str | os.PathLike[str], network: ReidNet,
              provenance: dict[str, Any] | None = None) -> Path:
    """Write a re-identification file atomically; returns its path."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    record = {"code_version": __version__,
              "saved": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    record.update(provenance or {})
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "spec": network.spec.to_json(), "provenance": json.dumps(record, sort_keys=True)}
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata=metadata))
    return Path(path)


def _is_counter(key: str) -> bool:
    """Batch-norm's ``num_batches_tracked`` is an integer by design."""
    return key.endswith("num_batches_tracked")


def load_reid(path: str | os.PathLike[str]) -> LoadedReid:
    """Open a re-identification file; :class:`CheckpointError` naming the file (and every
    mismatching key) for anything else."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(file, "no such file")
    data, digest = read_model_bytes(file)
    with failures_named(file, KIND, KIND):
        if not native.is_safetensors(data):
            raise CheckpointError(file, f"not a cxrgan-desktop {KIND} (not a safetensors file);"
                                  " train one with 'cxrgan reid train'")
        metadata, infos = native.read_native_header(file, data, FORMAT, FORMAT_VERSION, KIND)
        try:
            spec = ReidSpec.from_json(metadata["spec"])
            provenance = json.loads(metadata.get("provenance", "{}"))
        except (KeyError, ValueError, TypeError, RecursionError) as error:
            raise CheckpointError(file, f"{KIND} metadata is incomplete or invalid "
                                  f"({error})") from error
        if not isinstance(provenance, dict):
            provenance = {}
        refuse_non_float_header(file, infos, allow_int=_is_counter)
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in ReidNet(spec).state_dict().items()}
        problems = shape_mismatches(expected, {k: info.shape for k, info in infos.items()})
        if problems:
            raise CheckpointError(file, f"the weights do not fit the declared {KIND} "
                                  f"({spec.backbone}, {spec.input_size} px, "
                                  f"{spec.embedding_dim}-d); nothing was built", problems)
        tensors = native.load_tensors(file, data)
        check_values(file, tensors, allow_int=_is_counter)
        network = ReidNet(spec)
        network.load_state_dict(tensors)
        return LoadedReid(network.eval(), spec, file, digest, provenance)
