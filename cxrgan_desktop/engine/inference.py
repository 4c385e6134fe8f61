"""A generator rebuilt for fast inference: same function, fewer passes over memory.

Training needs the equalized-lr modules as they are; rendering does not. This module copies a
:class:`Generator` at its current resolution into plain tensors and runs a functional forward
that, on CPU, removes most of the non-convolution time:

- the He constants are folded into the weights once;
- nearest x2 up-sampling followed by a 3x3 convolution is one stride-2 transposed convolution
  with a 4x4 kernel (the 3x3 kernel summed over 2x2 shifts). The identity is exact in real
  arithmetic, skips materialising the up-sampled map and does 16/36 of that conv's work;
- LeakyReLU and pixel norm run in place, with one reduction pass, so the large maps at
  512-1024 pixels are not reallocated (fresh pages cost page faults);
- on CPU in float32, LeakyReLU runs as a oneDNN post-op of the convolution (the fused op
  PyTorch's own compiler emits), which saves one pass over every map;
- activations and weights are kept channels-last, the layout oneDNN's CPU convolutions
  prefer, so neither is reordered on each call.

:meth:`InferenceGenerator.differentiable` is the same function with gradients to z, for latent
class optimisation: folded weights, fused up-sampling and channels-last are kept; the in-place
steps and the oneDNN post-op (which has no backward) are not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cxrgan_desktop.engine.layers import EqualizedConv2d, EqualizedLinear
from cxrgan_desktop.engine.pggan import Generator

PIXEL_NORM_EPS = 1e-8


def _scaled(layer: EqualizedConv2d | EqualizedLinear) -> tuple[torch.Tensor, torch.Tensor]:
    return layer.scaled_weight().detach().clone(), layer.bias.detach().clone()


def fuse_upsample_into_conv(weight: torch.Tensor) -> torch.Tensor:
    """3x3 conv weight [Cout, Cin, 3, 3] -> transposed-conv weight [Cin, Cout, 4, 4] with

        conv_transpose2d(x, W4, stride=2, padding=1) == conv2d(upsample_x2(x), W, padding=1)
    """
    if weight.shape[-2:] != (3, 3):
        raise ValueError(f"expected a 3x3 kernel, got {tuple(weight.shape)}")
    padded = F.pad(weight, (1, 1, 1, 1))
    summed = (padded[:, :, 1:, 1:] + padded[:, :, :-1, 1:]
              + padded[:, :, 1:, :-1] + padded[:, :, :-1, :-1])
    return summed.transpose(0, 1).flip(2, 3).contiguous()


def _onednn_fusion_available() -> bool:
    ops = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available() and hasattr(ops, "_convolution_pointwise")
            and hasattr(ops, "_convolution_transpose_pointwise"))


_ONEDNN_FUSION = _onednn_fusion_available()


def _conv_lrelu(kind: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                slope: float) -> torch.Tensor:
    """3x3 conv ("conv") or fused up-sampling conv ("up"), then LeakyReLU."""
    if _ONEDNN_FUSION and x.device.type == "cpu" and x.dtype == torch.float32:
        ops = torch.ops.mkldnn
        if kind == "up":
            return ops._convolution_transpose_pointwise(
                x, weight, bias, [1, 1], [0, 0], [2, 2], [1, 1], 1, "leaky_relu", [slope], "")
        return ops._convolution_pointwise(
            x, weight, bias, [1, 1], [1, 1], [1, 1], 1, "leaky_relu", [slope], "")
    if kind == "up":
        x = F.conv_transpose2d(x, weight, bias, stride=2, padding=1)
    else:
        x = F.conv2d(x, weight, bias, padding=1)
    return F.leaky_relu_(x, slope)


def _pixel_norm_(x: torch.Tensor) -> torch.Tensor:
    # the reduction runs in float32 even for half-precision maps: a sum of squares over 512
    # channels overflows float16's range (65504) for moderate activations
    scale = torch.linalg.vector_norm(x, dim=1, keepdim=True, dtype=torch.float32)
    scale.square_().div_(x.shape[1]).add_(PIXEL_NORM_EPS).rsqrt_()
    return x.mul_(scale.to(x.dtype))


class InferenceGenerator(nn.Module):
    """Frozen copy of a generator at its current resolution; forward gives the raw output.

    A generator in the middle of a fade-in is refused: render from a finished resolution.
    """

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        if generator.fading:
            raise ValueError("cannot build a fast generator in the middle of a fade-in")
        self.config = generator.config
        self.slope = generator.config.leaky_slope
        depth = generator.current_depth
        self.resolution = generator.resolution
        fc_w, fc_b = _scaled(generator.latent_fc)
        self.register_buffer("fc_weight", fc_w)
        self.register_buffer("fc_bias", fc_b)
        self.convs: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        w, b = _scaled(generator.init_conv)
        self._add("conv", w, b)
        for block in generator.blocks[:depth]:
            w, b = _scaled(block.conv0)
            self._add("up", fuse_upsample_into_conv(w), b)
            w, b = _scaled(block.conv1)
            self._add("conv", w, b)
        w, b = _scaled(generator.to_image[depth])
        self.register_buffer("out_weight", w)
        self.register_buffer("out_bias", b)

    def _add(self, kind: str, weight: torch.Tensor, bias: torch.Tensor) -> None:
        # weights in the activations' layout: otherwise oneDNN reorders every weight on every
        # call (measured: about 75 ms per batch of four at 1024)
        weight = weight.contiguous(memory_format=torch.channels_last)
        index = len(self.convs)
        self.register_buffer(f"w{index}", weight)
        self.register_buffer(f"b{index}", bias)
        self.convs.append((kind, weight, bias))

    def _apply(self, fn, recurse: bool = True):  # keep the conv list pointing at moved buffers
        result = super()._apply(fn, recurse)
        self.convs = [(kind, getattr(self, f"w{i}"), getattr(self, f"b{i}"))
                      for i, (kind, _, _) in enumerate(self.convs)]
        return result

    @torch.inference_mode()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, c0 = z.shape[0], self.config.channels[0]
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)
        x = F.leaky_relu_(F.linear(z, self.fc_weight, self.fc_bias), self.slope)
        x = x.reshape(n, c0, 4, 4).contiguous(memory_format=torch.channels_last)
        for kind, weight, bias in self.convs:
            x = _pixel_norm_(_conv_lrelu(kind, x, weight, bias, self.slope))
        return F.conv2d(x, self.out_weight, self.out_bias).contiguous()

    def differentiable(self, z: torch.Tensor) -> torch.Tensor:
        """``forward`` with autograd (to z; the weights are buffers and get no gradient)."""
        n, c0 = z.shape[0], self.config.channels[0]
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)
        x = F.leaky_relu(F.linear(z, self.fc_weight, self.fc_bias), self.slope)
        x = x.reshape(n, c0, 4, 4).contiguous(memory_format=torch.channels_last)
        for kind, weight, bias in self.convs:
            if kind == "up":
                x = F.conv_transpose2d(x, weight, bias, stride=2, padding=1)
            else:
                x = F.conv2d(x, weight, bias, padding=1)
            x = F.leaky_relu(x, self.slope)
            x = x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)
        return F.conv2d(x, self.out_weight, self.out_bias).contiguous()
