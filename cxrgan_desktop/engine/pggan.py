"""Progressive Growing GAN generator and discriminator, with the paper's architecture.

Both networks hold every layer up to their maximum resolution from the start; ``depth`` says
how many up-scaling blocks are active (resolution = 4 * 2**depth) and ``alpha`` how far the
newest block has faded in (Karras et al.'s convention: 0 = only the previous resolution's
output, 1 = only the new block). Keeping every parameter present makes the growth API two
calls (:meth:`grow`, :meth:`set_alpha`), keeps optimiser state valid across growth, and lets
``depth`` and ``alpha`` travel in the state dict for exact resume.

Architecture, as Segal et al. released it: pixel-normalised z, an equalized dense layer to
C0 x 4 x 4 with LeakyReLU(0.2) and no pixel norm, a 3x3 conv, then per block nearest x2
up-sampling and two [3x3 conv, LeakyReLU, pixel norm]; 1x1 to-image convs per resolution.
The discriminator mirrors it: 1x1 from-image convs, blocks of [3x3 conv C(k) -> C(k-1),
LeakyReLU, 3x3 conv, LeakyReLU, 2x2 average pool], minibatch stddev, 3x3 and 4x4 convs and a
dense layer to one score.
"""

from __future__ import annotations

import json
import operator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cxrgan_desktop.engine.layers import (
    EqualizedConv2d,
    EqualizedLinear,
    minibatch_stddev,
    pixel_norm,
)

PAPER_CHANNELS: tuple[int, ...] = (512, 512, 512, 512, 256, 128, 64, 32, 16)
MAX_DEPTH = 8  # 4 * 2**8 = 1024 pixels
MAX_WIDTH = 4096
MAX_LATENT_SIZE = 4096
MAX_MBSTD_GROUP = 1024


def _whole(value: object, what: str) -> int:
    """``value`` as an int, refusing bools, fractions, NaN and non-numbers (JSON metadata can
    hold any of them) instead of truncating them silently."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return operator.index(value)  # numpy and torch integers
    except TypeError:
        raise ValueError(f"{what} must be a whole number, got {value!r}") from None


@dataclass(frozen=True)
class PGGANConfig:
    """Architecture of a PGGAN pair: enough to rebuild the networks from a weights file."""

    latent_size: int = 512
    channels: tuple[int, ...] = PAPER_CHANNELS  # feature maps at 4, 8, 16, ... pixels
    image_channels: int = 1
    leaky_slope: float = 0.2
    mbstd_group_size: int = 0  # 0 = whole batch (the paper); 4 = Karras et al.

    def __post_init__(self) -> None:
        # A config can come from a file's metadata: every field is checked for type and range
        # here, before any layer is built from it (a claimed width of 20000 would otherwise
        # ask for tens of GB). The bounds leave 8x headroom over the paper (latent 512,
        # widths up to 512); whether a file's tensors fit the config is the loader's check.
        if isinstance(self.channels, str | bytes) or not hasattr(self.channels, "__iter__"):
            raise ValueError(f"channels must be a list of widths, got {self.channels!r}")
        object.__setattr__(self, "channels",
                           tuple(_whole(c, "channel width") for c in self.channels))
        if not 1 <= len(self.channels) <= MAX_DEPTH + 1:
            raise ValueError(f"channels must list 1 to {MAX_DEPTH + 1} widths (4 up to "
                             f"{4 * 2**MAX_DEPTH} pixels), got {len(self.channels)}")
        if any(not 1 <= c <= MAX_WIDTH for c in self.channels):
            raise ValueError(f"channel widths must be between 1 and {MAX_WIDTH}, "
                             f"got {list(self.channels)}")
        object.__setattr__(self, "latent_size", _whole(self.latent_size, "latent_size"))
        if not 1 <= self.latent_size <= MAX_LATENT_SIZE:
            raise ValueError(f"latent_size must be between 1 and {MAX_LATENT_SIZE}, "
                             f"got {self.latent_size}")
        object.__setattr__(self, "image_channels",
                           _whole(self.image_channels, "image_channels"))
        if self.image_channels not in (1, 3):
            raise ValueError(f"image_channels must be 1 or 3, got {self.image_channels}")
        if isinstance(self.leaky_slope, bool) or not isinstance(self.leaky_slope, int | float) \
                or not 0.0 <= self.leaky_slope < 1.0:  # also refuses NaN
            raise ValueError(f"leaky_slope must be a number in [0, 1), got {self.leaky_slope!r}")
        object.__setattr__(self, "mbstd_group_size",
                           _whole(self.mbstd_group_size, "mbstd_group_size"))
        if not 0 <= self.mbstd_group_size <= MAX_MBSTD_GROUP:
            raise ValueError(f"mbstd_group_size must be between 0 and {MAX_MBSTD_GROUP}, "
                             f"got {self.mbstd_group_size}")

    @property
    def max_depth(self) -> int:
        return len(self.channels) - 1

    @property
    def max_resolution(self) -> int:
        return 4 * 2**self.max_depth

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PGGANConfig:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"a PGGAN config is a JSON object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown PGGAN config fields: {sorted(unknown)}")
        return cls(**data)


def resolution_of(depth: int) -> int:
    return 4 * 2**depth


class _Growable(nn.Module):
    """``depth`` / ``alpha`` bookkeeping shared by the generator and the discriminator."""

    config: PGGANConfig

    def _init_growth(self, depth: int | None) -> None:
        start = self.config.max_depth if depth is None else depth
        self.register_buffer("depth", torch.tensor(0, dtype=torch.long))
        self.register_buffer("alpha", torch.tensor(1.0))
        self.set_depth(start)

    @property
    def current_depth(self) -> int:
        return int(self.depth)

    @property
    def resolution(self) -> int:
        return resolution_of(self.current_depth)

    @property
    def fading(self) -> bool:
        return self.current_depth > 0 and float(self.alpha) < 1.0

    def set_depth(self, depth: int, alpha: float = 1.0) -> None:
        if not 0 <= depth <= self.config.max_depth:
            raise ValueError(f"depth {depth} outside 0..{self.config.max_depth}")
        self.depth.fill_(depth)
        self.set_alpha(alpha)

    def grow(self) -> None:
        """Add the next resolution, starting its fade-in at alpha = 0."""
        if self.current_depth >= self.config.max_depth:
            raise ValueError(f"already at the maximum resolution {self.config.max_resolution}")
        self.set_depth(self.current_depth + 1, alpha=0.0)

    def set_alpha(self, alpha: float) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha.fill_(alpha)


class UpBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, slope: float) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, out_channels, 3)
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = pixel_norm(F.leaky_relu(self.conv0(x), self.slope))
        return pixel_norm(F.leaky_relu(self.conv1(x), self.slope))


class Generator(_Growable):
    """z [N, latent_size] -> raw image [N, image_channels, R, R] at the current resolution."""

    def __init__(self, config: PGGANConfig, depth: int | None = None) -> None:
        super().__init__()
        self.config = config
        c, slope = config.channels, config.leaky_slope
        self.latent_fc = EqualizedLinear(config.latent_size, c[0] * 16)
        self.init_conv = EqualizedConv2d(c[0], c[0], 3)
        self.blocks = nn.ModuleList(UpBlock(c[i], c[i + 1], slope) for i in range(len(c) - 1))
        self.to_image = nn.ModuleList(EqualizedConv2d(w, config.image_channels, 1) for w in c)
        self._init_growth(depth)

    def features(self, z: torch.Tensor, depth: int) -> torch.Tensor:
        """Feature maps after ``depth`` up-scaling blocks."""
        slope = self.config.leaky_slope
        x = F.leaky_relu(self.latent_fc(pixel_norm(z)), slope)
        x = x.reshape(z.shape[0], self.config.channels[0], 4, 4)
        x = pixel_norm(F.leaky_relu(self.init_conv(x), slope))
        for block in self.blocks[:depth]:
            x = block(x)
        return x

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.latent_size:
            raise ValueError(
                f"expected latents of shape [N, {self.config.latent_size}], got {tuple(z.shape)}"
            )
        depth = self.current_depth
        if not self.fading:
            return self.to_image[depth](self.features(z, depth))
        previous = self.features(z, depth - 1)
        new = self.to_image[depth](self.blocks[depth - 1](previous))
        old = F.interpolate(self.to_image[depth - 1](previous), scale_factor=2.0, mode="nearest")
        return torch.lerp(old, new, self.alpha)


class DownBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, slope: float) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, out_channels, 3)
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv0(x), self.slope)
        x = F.leaky_relu(self.conv1(x), self.slope)
        return F.avg_pool2d(x, 2)


class Discriminator(_Growable):
    """Image [N, image_channels, R, R] at the current resolution -> score [N, 1].

    ``blocks[k - 1]`` takes resolution 4 * 2**k down to half of it, so index = depth - 1 is
    the highest-resolution block in use (the paper's file stores them the other way round;
    its importer reverses the order).
    """

    def __init__(self, config: PGGANConfig, depth: int | None = None) -> None:
        super().__init__()
        self.config = config
        c, slope = config.channels, config.leaky_slope
        self.from_image = nn.ModuleList(EqualizedConv2d(config.image_channels, w, 1) for w in c)
        self.blocks = nn.ModuleList(DownBlock(c[k], c[k - 1], slope) for k in range(1, len(c)))
        self.decision_conv = EqualizedConv2d(c[0] + 1, c[0], 3)
        self.decision_conv4 = EqualizedConv2d(c[0], c[0], 4, padding=0)
        self.decision_fc = EqualizedLinear(c[0], 1)
        self._init_growth(depth)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        depth, slope = self.current_depth, self.config.leaky_slope
        expected = (self.config.image_channels, self.resolution, self.resolution)
        if image.ndim != 4 or tuple(image.shape[1:]) != expected:
            raise ValueError(f"expected images [N, {expected}], got {tuple(image.shape)}")
        x = self.from_image[depth](image)  # the paper: no activation after from-image
        if depth > 0:
            x = self.blocks[depth - 1](x)
            if self.fading:
                old = self.from_image[depth - 1](F.avg_pool2d(image, 2))
                x = torch.lerp(old, x, self.alpha)
            for block in reversed(self.blocks[: depth - 1]):
                x = block(x)
        x = minibatch_stddev(x, self.config.mbstd_group_size)
        x = F.leaky_relu(self.decision_conv(x), slope)
        x = F.leaky_relu(self.decision_conv4(x), slope)
        return self.decision_fc(x.flatten(1))

