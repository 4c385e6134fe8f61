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
from cxrgan_desktop.engine.pggan import PGGANConfig

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


def looks_like_segal(state: dict[str, object]) -> bool:
    keys = state.keys()
    return any(k.endswith("latent_linear.0.module.weight") for k in keys)


def split_training_state(state: dict[str, object]) -> tuple[dict, str, dict | None]:
    """Pick the generator (EMA copy preferred) and the discriminator out of a full state."""
    for prefix in GENERATOR_PREFIXES:
        part = split_prefixed(state, prefix)
        if part:
            disc = split_prefixed(state, DISCRIMINATOR_PREFIX) or None
            return part, prefix.rstrip("."), disc
    return state, "generator-only file", None


def _convert(state: dict[str, object], table: list, block_count: int | None = None
             ) -> dict[str, torch.Tensor]:
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if key in _BUFFERS:
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
        converted[native] = value.detach().to(torch.float32)
    if unknown:
        raise LayoutError("keys that are not part of the paper's PGGAN layout", sorted(unknown))
    _scale_biases(converted)
    return converted


def _scale_biases(state: dict[str, torch.Tensor]) -> None:
    """(W x + b) * he == (W he) x + (b he): fold he into the bias now, weights scale at run time."""
    for key in list(state):
        if key.endswith(".bias"):
            weight = state[key[: -len("bias")] + "weight"]
            fan_in = math.prod(weight.shape[1:])
            state[key] = state[key] * math.sqrt(2.0 / fan_in)


def _shape(state: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in state:
        raise LayoutError("incomplete PGGAN generator", [f"missing key {key}"])
    return tuple(state[key].shape)


def infer_config(g_state: dict[str, torch.Tensor]) -> tuple[PGGANConfig, int]:
    """Latent size, channel widths and image channels from the weight shapes."""
    latent_out, latent_size = _shape(g_state, "latent_fc.weight")
    c0 = _shape(g_state, "init_conv.weight")[0]
    if latent_out != 16 * c0:
        raise LayoutError("inconsistent generator", [
            f"latent_fc.weight has {latent_out} outputs; 4x4x{c0} = {16 * c0} expected"])
    depth = len({k.split(".")[1] for k in g_state if k.startswith("blocks.")})
    channels = [c0] + [_shape(g_state, f"blocks.{i}.conv0.weight")[0] for i in range(depth)]
    image_channels = _shape(g_state, f"to_image.{depth}.weight")[0]
    config = PGGANConfig(latent_size=latent_size, channels=tuple(channels),
                         image_channels=image_channels)
    return config, depth


def _number(value: object, default: float) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return default


def import_segal(state: dict[str, object]) -> SegalImport:
    """Convert a paper-layout state dict (any of its containers, unwrapped) to native tensors."""
    g_raw, source, d_raw = split_training_state(state)
    g_state = _convert(g_raw, _G_TABLE)
    config, depth = infer_config(g_state)
    paper_alpha = _number(g_raw.get("alpha"), 0.0)
    d_state = None
    if d_raw:
        d_blocks = len({k.split(".")[1] for k in d_raw if k.startswith("ScaleBlocks.")})
        d_state = _convert(d_raw, _D_TABLE, block_count=d_blocks)
    alpha = 1.0 - paper_alpha if depth > 0 else 1.0
    return SegalImport(config, g_state, d_state, source, depth, alpha)
