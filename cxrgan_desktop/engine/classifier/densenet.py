"""DenseNet (Huang et al. 2017), written out so that its parameter names are torchvision's.

Why our own: the project takes no torchvision dependency, and CheXNet-style checkpoints (a
torchvision DenseNet-121 with a 14-way head) must load by a plain key mapping. Keeping the
module tree ``features.denseblockK.denselayerJ.norm1 ...`` identical to torchvision's makes
that mapping a rename of a prefix, not a translation table.

Each dense layer is BN-ReLU-Conv1x1 (``bn_size * growth_rate`` channels) then BN-ReLU-Conv3x3
(``growth_rate`` channels), concatenated onto its input; transitions halve the channels
(compression 0.5) and the resolution. The stem is a stride-2 7x7 convolution and a stride-2
max pool, so the feature map is input/32 at the end: inputs must be at least 32 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DenseNetShape:
    """The numbers that make a DenseNet; ``densenet121`` is CheXNet's backbone."""

    growth_rate: int
    block_config: tuple[int, ...]
    num_init_features: int
    bn_size: int = 4

    @property
    def feature_channels(self) -> int:
        channels = self.num_init_features
        for i, layers in enumerate(self.block_config):
            channels += layers * self.growth_rate
            if i != len(self.block_config) - 1:
                channels //= 2
        return channels


ARCHITECTURES: dict[str, DenseNetShape] = {
    # Huang et al.'s DenseNet-121 (7.0M parameters), the backbone of CheXNet.
    "densenet121": DenseNetShape(growth_rate=32, block_config=(6, 12, 24, 16),
                                 num_init_features=64),
    # A fast variant for CPUs and small images: 0.39M parameters, 13x fewer operations.
    "densenet-small": DenseNetShape(growth_rate=12, block_config=(4, 8, 12, 8),
                                    num_init_features=24),
}
MIN_INPUT_SIZE = 32


class _DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        bottleneck = self.conv1(self.relu1(self.norm1(features)))
        return self.conv2(self.relu2(self.norm2(bottleneck)))


class _DenseBlock(nn.ModuleDict):
    def __init__(self, layers: int, in_channels: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        for j in range(layers):
            self[f"denselayer{j + 1}"] = _DenseLayer(in_channels + j * growth_rate,
                                                     growth_rate, bn_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for layer in self.values():
            features = torch.cat([features, layer(features)], 1)
        return features


class _Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(nn.Module):
    """Backbone plus a linear head of ``num_outputs`` logits."""

    def __init__(self, shape: DenseNetShape, num_outputs: int, in_channels: int = 1) -> None:
        super().__init__()
        self.shape = shape
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(in_channels, shape.num_init_features, 7,
                                                    stride=2, padding=3, bias=False))
        self.features.add_module("norm0", nn.BatchNorm2d(shape.num_init_features))
        self.features.add_module("relu0", nn.ReLU(inplace=True))
        self.features.add_module("pool0", nn.MaxPool2d(3, stride=2, padding=1))
        channels = shape.num_init_features
        for i, layers in enumerate(shape.block_config):
            self.features.add_module(f"denseblock{i + 1}", _DenseBlock(
                layers, channels, shape.growth_rate, shape.bn_size))
            channels += layers * shape.growth_rate
            if i != len(shape.block_config) - 1:
                self.features.add_module(f"transition{i + 1}",
                                         _Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_outputs)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The pooled penultimate features ``[N, channels]`` the head reads: a feature space
        for a Fréchet distance where Inception's weights are not available."""
        features = torch.relu(self.features(images))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(features, 1), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(images))
