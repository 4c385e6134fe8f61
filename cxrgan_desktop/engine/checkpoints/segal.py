"""Import of Segal et al.'s released PGGAN (BradSegal/CXR_PGGAN state-dict layout).

Key conversion is a table: every key of the file must map to a native key, or the import
fails naming the keys it does not know. Conversions:
- the paper's layers compute (W x + b) * he; ours compute (W * he) x + b, so biases are
  multiplied by he = sqrt(2 / fan_in) on import;
- the paper's ``alpha`` weights the *old* path (0 = finished); ours weights the new one;
- the paper's discriminator stores its blocks highest resolution first; ours lowest first.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from cxrgan_desktop.engine.checkpoints.native import split_prefixed
from cxrgan_desktop.engine.pggan import MAX_DEPTH, PGGANConfig

GENERATOR_PREFIXES = ("gen_shadow.", "generator.")  # EMA copy preferred
DISCRIMINATOR_PREFIX = "discriminator."
_BUFFERS = ("current_size", "current_depth", "alpha")

_G_TABLE = [
    (re.compile(r"latent_linear\.0\.module\.(weight|bias)"), r"latent_fc.\1"),
    (re.compile(r"init_conv\.0\.module\.(weight|bias)"), r"init_conv.\1"),
    (re.compile(r"ScaleBlocks\.(\d+)\.convolv\.0\.module\.(weight|bias)"), r"blocks.\1.conv0.\2"),
    (re.compile(r"ScaleBlocks\.(\d+)\.convolv\.3\.module\.(weight|bias)"), r"blocks.\1.conv1.\2"),
    (re.compile(r"toRGB\.(\d+)\.module\.(weight|bias)"), r"to_image.\1.\2"),
]
_D_TABLE = [
    (re.compile(r"fromRGB\.(\d+)\.module\.(weight|bias)"), r"from_image.\1.\2"),
    # {R<i>}: the paper's block i is ours (block_count - 1 - i), filled in by _convert
    (re.compile(r"ScaleBlocks\.(\d+)\.convolv\.0\.module\.(weight|bias)"),
     r"blocks.{R\1}.conv0.\2"),
    (re.compile(r"ScaleBlocks\.(\d+)\.convolv\.2\.module\.(weight|bias)"),
     r"blocks.{R\1}.conv1.\2"),
    (re.compile(r"DecisionBlock\.0\.module\.(weight|bias)"), r"decision_conv.\1"),
    (re.compile(r"DecisionBlock\.2\.module\.(weight|bias)"), r"decision_conv4.\1"),
    (re.compile(r"DecisionLinear\.module\.(weight|bias)"), r"decision_fc.\1"),
]


class LayoutError(ValueError):
    """The tensors do not follow the paper's layout; ``details`` lists what is wrong."""

    def __init__(self, problem: str, details: list[str]) -> None:
        super().__init__(problem)
        self.details = details


@dataclass
class SegalImport:
    config: PGGANConfig
    generator_state: dict[str, torch.Tensor]
    discriminator_state: dict[str, torch.Tensor] | None
    source: str  # which part of the file the generator came from
    depth: int
    alpha: float  # native convention


def looks_like_segal(state: dict[object, object]) -> bool:
    return any(isinstance(k, str) and k.endswith("latent_linear.0.module.weight")
               for k in state)


def split_training_state(state: dict[str, object]) -> tuple[dict, str, dict | None]:
    """Pick the generator (EMA copy preferred) and the discriminator out of a full state."""
    for prefix in GENERATOR_PREFIXES:
        part = split_prefixed(state, prefix)
        if part:
            disc = split_prefixed(state, DISCRIMINATOR_PREFIX) or None
            return part, prefix.rstrip("."), disc
    return state, "generator-only file", None


def _convert(state: dict[object, object], table: list, block_count: int | None = None
             ) -> dict[str, torch.Tensor]:
    """Native tensors for a paper-layout part. Refuses keys the table does not know, values
    that are not tensors, and tensors that are not floating point *before* converting to
    float32 (a cast would silently turn bool or integer "weights" into numbers)."""
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    wrong_type: list[str] = []
    for key, value in state.items():
        if key in _BUFFERS:
            continue
        if not isinstance(key, str):
            unknown.append(f"{key!r} (not a text key)")
            continue
        for pattern, replacement in table:
            if pattern.fullmatch(key):
                native = pattern.sub(replacement, key)
                if block_count is not None:
                    native = re.sub(r"\{R(\d+)\}",
                                    lambda m: str(block_count - 1 - int(m.group(1))), native)
                break
        else:
            unknown.append(key)
            continue
        if not isinstance(value, torch.Tensor):
            unknown.append(f"{key} (not a tensor)")
            continue
        if not value.is_floating_point():
            wrong_type.append(f"{key}: {str(value.dtype).removeprefix('torch.')}")
            continue
        converted[native] = value.detach().to(torch.float32)
    if unknown:
        raise LayoutError("keys that are not part of the paper's PGGAN layout", sorted(unknown))
    if wrong_type:
        raise LayoutError("tensors that are not floating point (weights are float16, "
                          "bfloat16, float32 or float64)", sorted(wrong_type))
    _scale_biases(converted)
    return converted


def _scale_biases(state: dict[str, torch.Tensor]) -> None:
    """(W x + b) * he == (W he) x + (b he): fold he into the bias now, weights scale at run time.

    A bias without its weight, or a weight with no input dimension, is left for the shape
    check to name (it cannot belong to the architecture): no KeyError or division by zero."""
    for key in list(state):
        if key.endswith(".bias"):
            weight = state.get(key[: -len("bias")] + "weight")
            if weight is None or weight.ndim < 2:
                continue
            fan_in = math.prod(weight.shape[1:])
            if fan_in > 0:
                state[key] = state[key] * math.sqrt(2.0 / fan_in)


def _shape(state: dict[str, torch.Tensor], key: str, rank: int) -> tuple[int, ...]:
    if key not in state:
        raise LayoutError("incomplete PGGAN generator", [f"missing key {key}"])
    shape = tuple(state[key].shape)
    if len(shape) != rank or 0 in shape:
        raise LayoutError("malformed PGGAN generator", [
            f"{key} has shape {list(shape)}; a non-empty tensor of {rank} dimensions expected"])
    return shape


def infer_config(g_state: dict[str, torch.Tensor]) -> tuple[PGGANConfig, int]:
    """Latent size, channel widths and image channels from the weight shapes.

    Only the shapes that define the config are read here; that every other tensor fits it is
    checked against the computed shapes before a network is built."""
    latent_out, latent_size = _shape(g_state, "latent_fc.weight", 2)
    c0 = _shape(g_state, "init_conv.weight", 4)[0]
    if latent_out != 16 * c0:
        raise LayoutError("inconsistent generator", [
            f"latent_fc.weight has {latent_out} outputs; 4x4x{c0} = {16 * c0} expected"])
    depth = len({k.split(".")[1] for k in g_state if k.startswith("blocks.")})
    if depth > MAX_DEPTH:
        raise LayoutError("malformed PGGAN generator", [
            f"{depth} up-scaling blocks; at most {MAX_DEPTH} (1024 pixels) are supported"])
    channels = [c0] + [_shape(g_state, f"blocks.{i}.conv0.weight", 4)[0] for i in range(depth)]
    image_channels = _shape(g_state, f"to_image.{depth}.weight", 4)[0]
    try:
        config = PGGANConfig(latent_size=latent_size, channels=tuple(channels),
                             image_channels=image_channels)
    except ValueError as error:
        raise LayoutError("the weight shapes imply an unsupported architecture",
                          [str(error)]) from error
    return config, depth


def _number(value: object, default: float, what: str) -> float:
    if value is None:
        return default
    scalar = (isinstance(value, torch.Tensor) and value.numel() == 1
              and not value.dtype.is_complex)
    if scalar or (isinstance(value, int | float) and not isinstance(value, bool)):
        number = float(value)  # type: ignore[arg-type]
    else:
        raise LayoutError(f"malformed {what}", [f"{what} is {type(value).__name__}, "
                                                "not a number"])
    if not math.isfinite(number):
        raise LayoutError(f"malformed {what}", [f"{what} is {number}"])
    return number


def import_segal(state: dict[object, object]) -> SegalImport:
    """Convert a paper-layout state dict (any of its containers, unwrapped) to native tensors."""
    g_raw, source, d_raw = split_training_state(state)
    g_state = _convert(g_raw, _G_TABLE)
    config, depth = infer_config(g_state)
    paper_alpha = _number(g_raw.get("alpha"), 0.0, "fade-in alpha")
    # the paper's alpha weights the old path; within float rounding of [0, 1] it is clamped,
    # anything else is not a growth state
    if not -1e-6 <= paper_alpha <= 1.0 + 1e-6:
        raise LayoutError("malformed fade-in alpha", [
            f"alpha is {paper_alpha}; a fade-in weight between 0 and 1 expected"])
    d_state = None
    if d_raw:
        d_blocks = len({k.split(".")[1] for k in d_raw
                        if isinstance(k, str) and k.startswith("ScaleBlocks.")})
        d_state = _convert(d_raw, _D_TABLE, block_count=d_blocks)
    alpha = min(max(1.0 - paper_alpha, 0.0), 1.0) if depth > 0 else 1.0
    return SegalImport(config, g_state, d_state, source, depth, alpha)
