"""The pathology classifier as the rest of the application sees it.

A :class:`PathologyClassifier` takes images the library's way (``[N, 1, H, W]`` float in
[0, 1], MONOCHROME2) at any size, brings them to its input size with :func:`resize_images`,
normalises them, and returns one logit per label. Everything that feeds it (training,
evaluation, LCO, the judge) goes through the same resize, so a classifier never sees a
resampling at use that it did not see in training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cxrgan_desktop.engine.classifier.densenet import ARCHITECTURES, MIN_INPUT_SIZE, DenseNet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ClassifierSpec:
    """What a classifier file must record to be usable: architecture, labels and input."""

    architecture: str
    labels: tuple[str, ...]
    input_size: int
    in_channels: int = 1
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        object.__setattr__(self, "mean", tuple(float(x) for x in self.mean))
        object.__setattr__(self, "std", tuple(float(x) for x in self.std))
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown classifier architecture {self.architecture!r}; known: "
                             f"{', '.join(ARCHITECTURES)}")
        if not self.labels:
            raise ValueError("a classifier needs at least one label")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"repeated label names in {list(self.labels)}")
        if self.input_size < MIN_INPUT_SIZE:
            raise ValueError(f"input size {self.input_size} px is below the DenseNet minimum "
                             f"of {MIN_INPUT_SIZE} px")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {self.in_channels}")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ValueError("mean and std need one value per input channel")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")

    def to_json(self) -> str:
        return json.dumps({"architecture": self.architecture, "labels": list(self.labels),
                           "input_size": self.input_size, "in_channels": self.in_channels,
                           "mean": list(self.mean), "std": list(self.std)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClassifierSpec:
        data = json.loads(text)
        return cls(architecture=data["architecture"], labels=tuple(data["labels"]),
                   input_size=int(data["input_size"]), in_channels=int(data["in_channels"]),
                   mean=tuple(data["mean"]), std=tuple(data["std"]))


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Differentiable resize of square ``[N, C, R, R]`` images to ``size``.

    A power-of-two reduction is an exact box filter (repeated 2x2 means), which is how the
    training cache derives each resolution from the one above; any other ratio uses
    antialiased bilinear interpolation. Both have gradients, so LCO can optimise through it.
    """
    source = images.shape[-1]
    if images.shape[-2] != source:
        raise ValueError(f"expected square images, got {tuple(images.shape[-2:])}")
    if source == size:
        return images
    if source > size and source % size == 0 and (source // size) & (source // size - 1) == 0:
        return F.avg_pool2d(images, source // size)
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=source > size)


class PathologyClassifier(nn.Module):
    """Multi-label classifier: images in [0, 1] at any size in, one logit per label out."""

    def __init__(self, spec: ClassifierSpec) -> None:
        super().__init__()
        self.spec = spec
        self.network = DenseNet(ARCHITECTURES[spec.architecture], len(spec.labels),
                                spec.in_channels)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1), persistent=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    def label_index(self, name: str) -> int:
        try:
            return self.spec.labels.index(name)
        except ValueError:
            raise ValueError(f"label {name!r} is not one of this classifier's labels: "
                             f"{', '.join(self.spec.labels)}") from None

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"expected [N, 1, H, W] images, got {tuple(images.shape)}")
        x = resize_images(images, self.spec.input_size)
        x = x.expand(-1, self.spec.in_channels, -1, -1)
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self._prepare(images))

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The penultimate (pooled) features of the images, ``[N, feature_channels]``."""
        return self.network.embed(self._prepare(images))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Sigmoid of the logits, without gradients (evaluation and reports)."""
        return torch.sigmoid(self(images))
