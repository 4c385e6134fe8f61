"""Checks a model file passes before anything is built from it.

A model file is untrusted input. Three kinds of damage, deliberate or not, are caught here:

- **Size.** The file is read once, whole, into memory, with a cap: its SHA-256 is computed
  from exactly the bytes that are parsed (a file replaced while it is opened cannot give one
  file's hash and another's weights), and a huge file is refused before it fills memory.
- **Architecture.** The architecture a file declares (metadata) or implies (a paper-layout
  file) is compared with the shapes of the tensors actually present *before* a network is
  built: a 200 KB file that claims widths of 20000 would otherwise make the loader allocate
  tens of GB for layers the file cannot fill. :func:`generator_shapes` computes what a config
  needs without allocating; the safetensors header gives what a native file holds without
  reading its data.
- **Values.** Weights must be floating point, finite and of a sane magnitude; a file of NaN,
  infinities, 3e38 or integers would load and then render black or white images that look
  like results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from cxrgan_desktop.core.model_errors import CheckpointError, shape_mismatches
from cxrgan_desktop.engine.pggan import PGGANConfig

# Equalized learning rate stores weights at unit scale (drawn N(0, 1), multiplied by the He
# constant only at run time), and trained PGGAN or DenseNet parameters and batch-norm
# statistics stay within a few hundred. 1e8 is far above anything training produces, yet low
# enough that one layer's sum over the largest fan-in this code allows (4096 x 9 inputs) of
# weights times pixel-normalised activations (at most sqrt(4096) = 64) stays near 1e14, far
# from float32's overflow at 3.4e38: a weight above it is damage, not a model.
MAX_ABS_WEIGHT = 1e8

# safetensors dtype names: the floating-point ones a model may hold, and every item size (to
# check that a header's shapes match the bytes its offsets span)
FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
_ITEM_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2,
               "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8,
               "F64": 8}
_MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit

IntAllowed = Callable[[str], bool]


def _no_ints(key: str) -> bool:
    return False


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header describes it (no data read)."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int


def safetensors_header(path: Path, data: bytes) -> tuple[dict[str, str], dict[str, TensorInfo]]:
    """Metadata and tensor descriptions of a safetensors file held in ``data``.

    Validated here, before any tensor is made: the header is a JSON object within the file,
    metadata values are strings, every shape is a list of non-negative integers, and every
    tensor's offsets lie inside the data and span exactly shape x item size bytes (so a
    header cannot claim large tensors that the file does not hold)."""
    def damaged(why: str) -> CheckpointError:
        return CheckpointError(path, f"damaged safetensors file ({why})")

    if len(data) < 8:
        raise damaged("shorter than its 8-byte header length")
    length = int.from_bytes(data[:8], "little")
    if length > min(len(data) - 8, _MAX_HEADER_BYTES):
        raise damaged(f"its header claims {length} bytes, the file has {len(data) - 8}")
    try:
        header = json.loads(data[8:8 + length])
    except (UnicodeDecodeError, ValueError) as error:
        raise damaged(f"unreadable header: {error}") from error
    if not isinstance(header, dict):
        raise damaged("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise damaged("its metadata is not a map of strings")
    available = len(data) - 8 - length
    infos: dict[str, TensorInfo] = {}
    for key, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        except (TypeError, KeyError, ValueError) as error:
            raise damaged(f"entry {key} lacks dtype, shape or data_offsets") from error
        numbers = [*shape, begin, end] if isinstance(shape, list) else None
        if not isinstance(dtype, str) or numbers is None or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise damaged(f"entry {key} has an invalid dtype, shape or offsets")
        nbytes = math.prod(shape) * _ITEM_BYTES.get(dtype, 1)
        if dtype in _ITEM_BYTES and (end > available or end - begin != nbytes):
            raise damaged(f"tensor {key} of shape {shape} ({dtype}) needs {nbytes} bytes; its "
                          f"offsets {begin}..{end} span {end - begin} of the {available} "
                          "present")
        infos[key] = TensorInfo(dtype, tuple(shape), nbytes)
    return metadata, infos


def refuse_non_float_header(path: Path, infos: Mapping[str, TensorInfo],
                            allow_int: IntAllowed = _no_ints) -> None:
    """Refuse, before loading, tensors that are not float16/bfloat16/float32/float64."""
    wrong = [f"{key}: {info.dtype}" for key, info in infos.items()
             if info.dtype not in FLOAT_DTYPES
             and not (info.dtype in ("I64", "I32") and allow_int(key))]
    if wrong:
        raise CheckpointError(path, "the file holds tensors that are not floating point "
                              "(weights are float16, bfloat16, float32 or float64)", wrong)


def value_problems(tensors: Mapping[str, object], allow_int: IntAllowed = _no_ints
                   ) -> list[str]:
    """One line per tensor that is not floating point, holds NaN or infinity, or exceeds
    :data:`MAX_ABS_WEIGHT` in magnitude (entries that are not tensors are the caller's)."""
    problems = []
    for key, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            continue
        if not value.is_floating_point():
            if not (allow_int(key) and value.dtype in (torch.int64, torch.int32)):
                problems.append(f"{key}: {str(value.dtype).removeprefix('torch.')} "
                                "(not floating point)")
            continue
        if value.numel() == 0:
            continue
        low, high = torch.aminmax(value.detach().reshape(-1))  # one pass; NaN propagates
        extreme = max(abs(float(low)), abs(float(high)))
        if not math.isfinite(extreme):
            count = int((~torch.isfinite(value)).sum())
            problems.append(f"{key}: {count} of {value.numel()} values are NaN or infinite")
        elif extreme > MAX_ABS_WEIGHT:
            problems.append(f"{key}: a value of magnitude {extreme:.3g} (more than "
                            f"{MAX_ABS_WEIGHT:.0e}: not a trained weight)")
    return problems


def check_values(path: Path, tensors: Mapping[str, object],
                 allow_int: IntAllowed = _no_ints) -> None:
    """Raise a :class:`CheckpointError` listing every tensor :func:`value_problems` finds."""
    problems = value_problems(tensors, allow_int)
    if problems:
        raise CheckpointError(path, "the weights are damaged: every weight must be a finite "
                              f"floating-point number of magnitude at most {MAX_ABS_WEIGHT:.0e}",
                              problems)


def generator_shapes(config: PGGANConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter of :class:`~cxrgan_desktop.engine.pggan.Generator` for ``config`` and
    its shape, computed, not allocated (a test keeps this equal to the module's)."""
    c, image = config.channels, config.image_channels
    shapes: dict[str, tuple[int, ...]] = {
        "latent_fc.weight": (16 * c[0], config.latent_size), "latent_fc.bias": (16 * c[0],),
        "init_conv.weight": (c[0], c[0], 3, 3), "init_conv.bias": (c[0],)}
    for i in range(len(c) - 1):
        shapes[f"blocks.{i}.conv0.weight"] = (c[i + 1], c[i], 3, 3)
        shapes[f"blocks.{i}.conv0.bias"] = (c[i + 1],)
        shapes[f"blocks.{i}.conv1.weight"] = (c[i + 1], c[i + 1], 3, 3)
        shapes[f"blocks.{i}.conv1.bias"] = (c[i + 1],)
    for k, width in enumerate(c):
        shapes[f"to_image.{k}.weight"] = (image, width, 1, 1)
        shapes[f"to_image.{k}.bias"] = (image,)
    return shapes


def check_generator_shapes(path: Path, config: PGGANConfig,
                           found: Mapping[str, tuple[int, ...]]) -> None:
    """Refuse, naming keys and shapes and both parameter counts, a file whose generator
    tensors are not exactly those ``config`` needs. Nothing is allocated either way."""
    expected = generator_shapes(config)
    problems = shape_mismatches(expected, dict(found))
    if problems:
        needed = sum(math.prod(s) for s in expected.values())
        held = sum(math.prod(s) for s in found.values())
        raise CheckpointError(
            path, f"the weights do not fit the architecture they declare "
            f"({config.max_resolution}x{config.max_resolution}, channels "
            f"{list(config.channels)}, latent {config.latent_size}): that architecture has "
            f"{needed:,} parameters ({needed * 4 / 1e6:,.1f} MB in float32), the file holds "
            f"{held:,}; nothing was built", problems)
