"""The FID Inception network: TensorFlow's 2015-12-05 Inception graph, as the field runs it.

FID is only comparable between papers when every one of them measures with the same network,
so this is built to load the standard file ``pt_inception-2015-12-05-6726825d.pth`` exactly
(strictly: every key used, every shape checked) and to reproduce its two quirks against
torchvision's Inception v3: the average-pool branches of the A, C and first E blocks exclude
padding from the average, and the pool branch of the last E block (``Mixed_7c``) is a max pool.
The feature is the 2048-d global average after ``Mixed_7c``; the 1008-way ``fc`` layer is loaded
(the file holds it) but never evaluated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

FEATURE_DIM = 2048
LOGITS = 1008


class InceptionLayoutError(ValueError):
    """Weights that do not fit the FID Inception layout; ``problems`` lists every mismatch."""

    def __init__(self, message: str, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more"
                                           if len(problems) > 8 else "")
        super().__init__(f"{message}: {shown}")


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001, as in TensorFlow), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int | tuple[int, int],
                 stride: int = 1, padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_excluding_padding(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_excluding_padding(x)),
        ], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            dbl = layer(dbl)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            dbl,
            self.branch_pool(_avg_pool_excluding_padding(x)),
        ], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = x
        for layer in (self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3,
                      self.branch7x7x3_4):
            seven = layer(seven)
        return torch.cat([
            self.branch3x3_2(self.branch3x3_1(x)),
            seven,
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class InceptionE(nn.Module):
    """``max_pool_branch``: the FID graph's last block pools its fourth branch with a max."""

    def __init__(self, in_channels: int, max_pool_branch: bool) -> None:
        super().__init__()
        self.max_pool_branch = max_pool_branch
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.max_pool_branch:
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            pooled = _avg_pool_excluding_padding(x)
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(three), self.branch3x3_2b(three),
            self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl),
            self.branch_pool(pooled),
        ], 1)


class FIDInception(nn.Module):
    """[N, 3, 299, 299] in [-1, 1] -> [N, 2048] pool features (see :mod:`fid_features` for
    the preprocessing that produces such input from an image)."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool_branch=False)
        self.Mixed_7c = InceptionE(2048, max_pool_branch=True)
        self.fc = nn.Linear(FEATURE_DIM, LOGITS)  # in the file, unused for FID

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a,
                      self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,
                      self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def fold_batch_norm(net: nn.Module) -> nn.Module:
    """Fold every evaluation-mode batch norm into its convolution, in place.

    Same function to float32 round-off (2e-7 relative on the features, measured), one pass
    over memory fewer per layer: about 8 % faster on CPU.
    """
    for module in net.modules():
        if isinstance(module, BasicConv2d) and isinstance(module.bn, nn.BatchNorm2d):
            module.conv = fuse_conv_bn_eval(module.conv.eval(), module.bn.eval())
            module.bn = nn.Identity()
    return net


def layout_problems(net: nn.Module, state: dict[str, object]) -> list[str]:
    """Every key missing, unexpected or of the wrong shape (``num_batches_tracked`` aside:
    TensorFlow ports carry it or not, and it has no effect in evaluation)."""
    expected = {key: tuple(value.shape) for key, value in net.state_dict().items()
                if not key.endswith("num_batches_tracked")}
    given = {key: value for key, value in state.items()
             if isinstance(key, str) and not key.endswith("num_batches_tracked")}
    problems = [f"missing {key} {list(shape)}" for key, shape in expected.items()
                if key not in given]
    problems += [f"unexpected {key}" for key in given if key not in expected]
    for key, shape in expected.items():
        value = given.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            problems.append(f"{key} is a {type(value).__name__}, not a tensor")
        elif tuple(value.shape) != shape:
            problems.append(f"{key} has shape {list(value.shape)}, expected {list(shape)}")
    return problems


def build_fid_inception(state: dict[str, object]) -> FIDInception:
    """The network with ``state`` loaded strictly; :class:`InceptionLayoutError` otherwise."""
    net = FIDInception()
    problems = layout_problems(net, state)
    if problems:
        raise InceptionLayoutError("not the FID Inception layout", problems)
    tensors = {key: value for key, value in state.items()
               if not key.endswith("num_batches_tracked")}
    net.load_state_dict(tensors, strict=False)  # strictness checked above, with better words
    return net.eval().requires_grad_(False)
