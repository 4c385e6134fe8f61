"""Reading a model file that may be hostile: its bytes (capped, hashed from one handle) and,
for PyTorch's pickle-based format, torch.load with ``weights_only`` or the restricted
unpickler, never more.

Why here, below the engine and the metrics: every network the application loads from a file
(generators, classifiers, the FID Inception) goes through the same gate, and the metrics may
not import the engine.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from cxrgan_desktop.core import restricted_pickle
from cxrgan_desktop.core.model_errors import CheckpointError, UnsafeCheckpointError

# The paper's full training checkpoint (generator, EMA generator, discriminator) is about
# 0.3 GB and a 1024-pixel generator alone about 0.1 GB; 2 GiB leaves room for wider models
# and optimiser states while refusing a multi-GB file before it is read into memory.
MAX_MODEL_FILE_BYTES = 2 * 1024**3


def read_model_bytes(path: Path, limit: int | None = None) -> tuple[bytes, str]:
    """The whole file and the SHA-256 of exactly those bytes, from one open handle.

    One handle means one file: ``os.replace`` of the path while this reads (an
    ``import-model --force`` of the same name) leaves this handle on the old file, so the
    hash always describes the bytes that are then parsed. ``limit``: bytes at most
    (default :data:`MAX_MODEL_FILE_BYTES`)."""
    limit = MAX_MODEL_FILE_BYTES if limit is None else limit
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise CheckpointError(path, f"too large to be a model file this application "
                                      f"opens ({size / 1e9:.1f} GB; the limit is "
                                      f"{limit / 1e9:.1f} GB)")
            data = handle.read(limit + 1)  # a file growing meanwhile cannot pass the cap
    except OSError as error:
        raise CheckpointError(path, f"cannot be read ({error.strerror or error})") from error
    if len(data) > limit:
        raise CheckpointError(path, f"too large to be a model file this application opens "
                              f"(over {limit / 1e9:.1f} GB)")
    return data, hashlib.sha256(data).hexdigest()


def _torch_container(data: bytes) -> str | None:
    """Why ``data`` cannot be a torch checkpoint, or None if it may be one.

    torch.load takes anything that is not a zip for its legacy format and, when the bytes
    happen to parse as a tar archive (a file of zero bytes does), reports a "legacy .tar
    format" that says nothing about the real problem."""
    if data[:4] == b"PK\x03\x04" or data[:1] == b"\x80":  # torch >= 1.6 zip; legacy pickle
        return None
    if not data:
        return "the file is empty"
    if data[:1] == b"\0" and data.count(0) == len(data):
        return "the file holds only zero bytes (an interrupted copy or download?)"
    if data[257:262] == b"ustar":
        return ("a tar archive: PyTorch's pre-1.0 tar checkpoint format is not supported; "
                "re-save the weights with a current PyTorch")
    return (f"neither a zip-based PyTorch checkpoint nor a pickle (it starts with "
            f"{data[:8].hex(' ')})")


def read_torch_file(file: Path, data: bytes | None = None) -> Any:
    """torch.load with weights_only; for harmless extras, the restricted unpickler. Never more.

    ``data``: the file's bytes already read (what the caller hashed); by default the file is
    read here."""
    if data is None:
        data, _ = read_model_bytes(file)
    why_not = _torch_container(data)
    if why_not is not None:
        raise CheckpointError(file, f"not a readable PyTorch checkpoint: {why_not}")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # refused by the weights-only allow-list: try ours, which knows record types
    except Exception as error:  # a damaged file can fail in any layer of the parser
        raise CheckpointError(file, f"not a readable PyTorch checkpoint ({error})") from error
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False,
                          pickle_module=restricted_pickle)
    except restricted_pickle.RefusedGlobal as error:
        raise UnsafeCheckpointError(
            file, f"refused: the file's pickle asks to import {error.qualified_name}, which is "
            "not plain data. Model files may hold only tensors and plain values; nothing in "
            "this file was run. Obtain the weights from a trusted source.") from error
    except Exception as error:  # as above: report, never crash, on a damaged file
        raise CheckpointError(file, f"not a readable PyTorch checkpoint ({error})") from error
