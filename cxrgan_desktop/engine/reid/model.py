"""The patient re-identification network: a radiograph in, a unit-norm identity vector out.

After Packhaeuser et al. (Sci Rep 2022), who showed that a Siamese ResNet-50 on ChestX-ray14
recognises the patient behind a radiograph (verification AUROC 0.994): two radiographs of one
patient, taken years apart, lie close in its embedding. The memorisation audit uses this to
ask whether a generated image shows a training patient, which pixel correlation misses as soon
as the copy is shifted, re-windowed or blurred.

Backbones:

- ``compact`` (default): a stride-2 stem and four residual stages (3x3 convolutions, batch
  norm, stride 2 between stages), about 60 M multiply-adds per 64 px image: a CPU trains it
  on a few thousand images in minutes.
- ``resnet18`` / ``resnet50``: He et al.'s layouts (basic and bottleneck blocks, [2, 2, 2, 2]
  and [3, 4, 6, 3]) with a one-channel stem, written here rather than taken from torchvision,
  which this application does not depend on; no pretrained weights are ever fetched.

Each image is standardised on its own (zero mean, unit standard deviation) before the
network sees it. Why: a copy of a training image may come back with another window and level
(a linear change of grey values), and the patient has not changed; standardising makes the
embedding blind to it by construction, rather than leaving the network to learn it. The
output is projected linearly to ``embedding_dim`` and L2-normalised, so an inner product is
the cosine similarity that the audit's nearest-neighbour search ranks by.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cxrgan_desktop.engine.classifier.model import resize_images

BACKBONES = ("compact", "resnet18", "resnet50")
_MIN_INPUT = {"compact": 16, "resnet18": 32, "resnet50": 32}
_RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}
DEFAULT_WIDTHS = (32, 64, 128, 256)


@dataclass(frozen=True)
class ReidSpec:
    """What a re-identification file must record to rebuild its network.

    ``widths`` are the channels of the compact backbone's four stages (ignored, and stored
    empty, for the ResNets, whose widths are fixed by their layout).
    """

    input_size: int = 64
    embedding_dim: int = 128
    backbone: str = "compact"
    widths: tuple[int, ...] = DEFAULT_WIDTHS

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown re-identification backbone {self.backbone!r}; known: "
                             f"{', '.join(BACKBONES)}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths)
                           if self.backbone == "compact" else ())
        if isinstance(self.input_size, bool) or int(self.input_size) != self.input_size:
            raise ValueError(f"input size must be a whole number, got {self.input_size!r}")
        if not _MIN_INPUT[self.backbone] <= self.input_size <= 1024:
            raise ValueError(f"input size {self.input_size} px is outside {self.backbone}'s "
                             f"range ({_MIN_INPUT[self.backbone]} to 1024 px)")
        if not 2 <= self.embedding_dim <= 4096:
            raise ValueError(f"embedding dimension must be 2 to 4096, got {self.embedding_dim}")
        if self.backbone == "compact" and (
                not 1 <= len(self.widths) <= 6 or any(not 1 <= w <= 2048 for w in self.widths)):
            raise ValueError(f"compact widths must be 1 to 6 stages of 1 to 2048 channels, "
                             f"got {list(self.widths)}")

    def to_json(self) -> str:
        return json.dumps({"input_size": self.input_size, "embedding_dim": self.embedding_dim,
                           "backbone": self.backbone, "widths": list(self.widths)},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReidSpec:
        data = json.loads(text)
        return cls(input_size=int(data["input_size"]), embedding_dim=int(data["embedding_dim"]),
                   backbone=str(data["backbone"]), widths=tuple(data.get("widths", ())))


class _Basic(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projected) shortcut."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


class _Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), as in ResNet-50."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


def _stages(block: type[_Basic] | type[_Bottleneck], cin: int, widths: tuple[int, ...],
            counts: tuple[int, ...], first_stride: int) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for k, (width, count) in enumerate(zip(widths, counts, strict=True)):
        stage = []
        for b in range(count):
            stride = (first_stride if k == 0 else 2) if b == 0 else 1
            stage.append(block(cin, width, stride))
            cin = width * block.expansion
        layers.append(nn.Sequential(*stage))
    return nn.Sequential(*layers), cin


class ReidNet(nn.Module):
    """Images ``[B, 1, H, W]`` in [0, 1] (any square size) -> unit-norm ``[B, embedding_dim]``."""

    def __init__(self, spec: ReidSpec) -> None:
        super().__init__()
        self.spec = spec
        if spec.backbone == "compact":
            stem_width = spec.widths[0]
            self.stem = nn.Sequential(nn.Conv2d(1, stem_width, 3, 2, 1, bias=False),
                                      nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True))
            # a stride-2 stem, then one basic block per stage, each after the first halving
            self.stages, channels = _stages(_Basic, stem_width, spec.widths,
                                            (1,) * len(spec.widths), first_stride=1)
        else:
            # the ResNet stem (7x7 stride 2, 3x3 max pool) takes one channel here
            self.stem = nn.Sequential(nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
            block = _Basic if spec.backbone == "resnet18" else _Bottleneck
            self.stages, channels = _stages(block, 64, (64, 128, 256, 512),
                                            _RESNET_BLOCKS[spec.backbone], first_stride=1)
        self.head = nn.Linear(channels, spec.embedding_dim)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Resize to the input size and standardise each image (see the module docstring)."""
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"expected [B, 1, H, W] images, got {tuple(images.shape)}")
        x = resize_images(images.float(), self.spec.input_size)
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = x.std(dim=(2, 3), keepdim=True)
        # a constant image has no pattern to standardise: it stays zero, not NaN
        return (x - mean) / std.clamp_min(1e-4)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(self.prepare(images)))
        x = x.mean(dim=(2, 3))
        return F.normalize(self.head(x), dim=1)
