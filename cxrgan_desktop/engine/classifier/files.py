"""Classifier files: the native ``.safetensors`` format and the CheXNet import.

Native: the network's state dict (batch-norm statistics included) as tensors; metadata
``format``, ``format_version``, ``name``, ``spec`` (architecture, labels, input size,
normalisation: :class:`ClassifierSpec` JSON) and ``provenance`` (training data fingerprint,
validation AUROC per label, date, code version). LCO records the file's SHA-256, so a
synthetic image names the exact classifier that labelled it.

CheXNet import: the widely used reproduction (Weng et al., ``model.pth.tar``) stores a
torchvision DenseNet-121 with a ``Linear + Sigmoid`` head under ``module.densenet121.``, in
torchvision's pre-0.4 key spelling (``norm.1``, ``conv.2``). It is read without code execution
and renamed onto our DenseNet; its input convention (three channels, ImageNet
normalisation, 224 px) and the dataset's 14 labels in CheXNet's order are recorded in the spec.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from cxrgan_desktop import __version__
from cxrgan_desktop.core.fileio import atomic_write_bytes
from cxrgan_desktop.core.model_errors import CheckpointError, failures_named, shape_mismatches
from cxrgan_desktop.core.names import printable
from cxrgan_desktop.core.torch_files import read_model_bytes, read_torch_file
from cxrgan_desktop.engine.checkpoints import native
from cxrgan_desktop.engine.checkpoints.validate import check_values, refuse_non_float_header
from cxrgan_desktop.engine.classifier.model import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClassifierSpec,
    PathologyClassifier,
)
from cxrgan_desktop.labels.chestxray14 import FINDINGS

FORMAT = "cxrgan-desktop/classifier"
FORMAT_VERSION = "1"


@dataclass
class LoadedClassifier:
    """A classifier in eval mode, with the file it came from."""

    classifier: PathologyClassifier
    path: Path
    sha256: str
    name: str
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.labels


def save_classifier(path: str | os.PathLike[str], classifier: PathologyClassifier, name: str,
                    provenance: dict[str, Any] | None = None) -> Path:
    """Write a native classifier file atomically; returns its path."""
    tensors = {k: v.detach().cpu().contiguous()
               for k, v in classifier.network.state_dict().items()}
    record = {"code_version": __version__,
              "saved": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    record.update(provenance or {})
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
                "spec": classifier.spec.to_json(),
                "provenance": json.dumps(record, sort_keys=True)}
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata=metadata))
    return Path(path)


def load_classifier(path: str | os.PathLike[str]) -> LoadedClassifier:
    """Open a native classifier file, or import a CheXNet-style PyTorch checkpoint.

    As for generators: the file is read once and the SHA-256 is that of the bytes parsed;
    shapes are compared with the declared network (built on the meta device, which allocates
    nothing) before a real one is built, and weights must be finite floating point (batch-norm
    counters excepted). Raises :class:`CheckpointError` naming the file (and every
    mismatching key) for anything else, including a PGGAN generator given by mistake.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(file, "no such file")
    data, digest = read_model_bytes(file)
    with failures_named(file, "classifier", "classifier"):
        return _load_classifier(file, data, digest)


def _is_counter(key: str) -> bool:
    """Batch-norm's ``num_batches_tracked`` is an integer by design."""
    return key.endswith("num_batches_tracked")


def _load_classifier(file: Path, data: bytes, digest: str) -> LoadedClassifier:
    if native.is_safetensors(data):
        metadata, infos = native.read_native_header(file, data, FORMAT, FORMAT_VERSION,
                                                    "classifier")
        try:
            spec = ClassifierSpec.from_json(metadata["spec"])
            provenance = json.loads(metadata.get("provenance", "{}"))
        except (KeyError, ValueError, TypeError, RecursionError) as error:
            raise CheckpointError(file, f"classifier metadata is incomplete or invalid "
                                  f"({error})") from error
        refuse_non_float_header(file, infos, allow_int=_is_counter)
        _check_shapes(file, spec, {k: info.shape for k, info in infos.items()})
        tensors = native.load_tensors(file, data)
        name = printable(metadata.get("name") or file.stem)
    else:
        spec, tensors = _import_chexnet(file, data)
        _check_shapes(file, spec, {k: tuple(v.shape) for k, v in tensors.items()})
        provenance = {"imported_from": file.name, "imported_sha256": digest,
                      "training_data": "NIH ChestX-ray14 (CheXNet-style checkpoint)"}
        name = printable(file.stem)
    check_values(file, tensors, allow_int=_is_counter)
    classifier = PathologyClassifier(spec)  # shapes were checked by _check_shapes above
    classifier.network.load_state_dict(tensors)
    return LoadedClassifier(classifier.eval(), file, digest, name, provenance)


def _check_shapes(file: Path, spec: ClassifierSpec, found: dict[str, tuple[int, ...]]) -> None:
    """Refuse a file whose tensors are not the declared network's, before building it: a spec
    with a million labels in a small file would otherwise allocate a multi-GB head."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape)
                    for k, v in PathologyClassifier(spec).network.state_dict().items()}
    problems = shape_mismatches(expected, found)
    if problems:
        raise CheckpointError(file, f"the weights do not fit the declared classifier "
                              f"({spec.architecture}, {len(spec.labels)} labels); nothing "
                              "was built", problems)


_OLD_SPELLING = re.compile(r"\.(norm|relu|conv)\.(\d)\.")


def chexnet_key(key: str) -> str | None:
    """Our key for a CheXNet checkpoint key, or None for keys outside the network."""
    for prefix in ("module.densenet121.", "densenet121.", "module."):
        if key.startswith(prefix):
            key = key[len(prefix):]
            break
    key = _OLD_SPELLING.sub(r".\1\2.", key)
    key = key.replace("classifier.0.", "classifier.")
    return key if key.startswith(("features.", "classifier.")) else None


def _import_chexnet(file: Path, data: bytes) -> tuple[ClassifierSpec, dict[str, torch.Tensor]]:
    obj = read_torch_file(file, data)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not any(
            isinstance(k, str) and "denseblock" in k for k in obj):
        raise CheckpointError(file, "not a classifier this application knows: neither a "
                              "cxrgan-desktop classifier (.safetensors) nor a CheXNet-style "
                              "DenseNet-121 checkpoint")
    tensors = {}
    for key, value in obj.items():
        mapped = chexnet_key(str(key))
        if mapped is not None and isinstance(value, torch.Tensor):
            tensors[mapped] = value
    head = tensors.get("classifier.weight")
    outputs = int(head.shape[0]) if head is not None else 0
    if outputs != len(FINDINGS):
        raise CheckpointError(file, f"a DenseNet checkpoint with {outputs} outputs; the CheXNet "
                              f"import expects the {len(FINDINGS)} ChestX-ray14 findings")
    in_channels = int(tensors["features.conv0.weight"].shape[1]) \
        if "features.conv0.weight" in tensors else 3
    spec = ClassifierSpec("densenet121", FINDINGS, input_size=224, in_channels=in_channels,
                          mean=IMAGENET_MEAN[:in_channels], std=IMAGENET_STD[:in_channels])
    return spec, tensors
