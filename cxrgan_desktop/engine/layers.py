"""Building blocks of Progressive Growing GANs (Karras et al., 2018).

Equalized learning rate: weights are stored N(0, 1) and scaled at run time by the He constant
sqrt(2 / fan_in), so that Adam's per-parameter step sizes treat every layer alike. For fast
inference the constant can be folded into the stored weights once (:meth:`fold_gain`).

Convention: ``y = conv(x, W * gain) + b``. The paper's released code scales the bias too,
``(W x + b) * gain``; its importer converts by multiplying the stored bias by the gain, which
gives the same function.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _Equalized(nn.Module):
    """A weight stored N(0, 1) and used times ``gain`` (the He constant), plus a bias."""

    def __init__(self, weight_shape: tuple[int, ...], fan_in: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(weight_shape))
        self.bias = nn.Parameter(torch.zeros(weight_shape[0]))
        self.gain = math.sqrt(2.0 / fan_in)

    def scaled_weight(self) -> torch.Tensor:
        return self.weight if self.gain == 1.0 else self.weight * self.gain

    def fold_gain(self) -> None:
        """Multiply the He constant into the stored weight (inference only: changes training)."""
        with torch.no_grad():
            self.weight.mul_(self.gain)
        self.gain = 1.0


class EqualizedLinear(_Equalized):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__((out_features, in_features), in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.scaled_weight(), self.bias)


class EqualizedConv2d(_Equalized):
    """Stride-1 convolution with 'same' padding and equalized learning rate."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 padding: int | None = None) -> None:
        super().__init__((out_channels, in_channels, kernel_size, kernel_size),
                         in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2 if padding is None else padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.scaled_weight(), self.bias, padding=self.padding)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit mean square over channels (dim 1)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, group_size: int = 0, eps: float = 1e-8) -> torch.Tensor:
    """Append one feature map holding the mean standard deviation of features across a group.

    ``group_size`` 0 uses the whole batch as one group (the paper's discriminator); a positive
    size splits the batch into groups of that size as in Karras et al. (the batch must divide).
    The standard deviation is the biased one (mean of squared deviations), as both use.
    """
    n, c, h, w = x.shape
    group = n if group_size <= 0 else min(group_size, n)
    if n % group != 0:
        raise ValueError(f"minibatch stddev: batch {n} is not divisible by group size {group}")
    y = x.reshape(group, n // group, c, h, w)
    y = torch.sqrt((y - y.mean(dim=0, keepdim=True)).square().mean(dim=0) + eps)
    y = y.mean(dim=(1, 2, 3)).reshape(n // group, 1, 1, 1)  # one value per group
    y = y.repeat(group, 1, h, w)
    return torch.cat([x, y], dim=1)
