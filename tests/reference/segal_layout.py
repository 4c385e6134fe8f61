"""An independent, deliberately plain rendition of Segal et al.'s PGGAN, written from the
layout description in shared/reference/segal_pggan_layout.md, not from the package's code.

It serves two purposes: the import tests compare the package's output with it, and the
generation benchmark runs it as "the naive implementation" a user of the authors' code would
get (runtime He scaling of outputs and biases, separate up-sampling, no fusion).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PAPER_CHANNELS = (512, 512, 512, 512, 256, 128, 64, 32, 16)


def random_segal_generator_state(
    channels=PAPER_CHANNELS, latent_size=512, image_channels=3, seed=0, paper_alpha=0.0
):
    """A generator state dict in the paper's key layout with N(0,1) weights and small biases."""
    g = torch.Generator().manual_seed(seed)
    depth = len(channels) - 1
    state = {
        "current_size": torch.tensor(4 * 2**depth),
        "current_depth": torch.tensor(depth),
        "alpha": torch.tensor(paper_alpha),
        "latent_linear.0.module.weight": torch.randn(16 * channels[0], latent_size, generator=g),
        "latent_linear.0.module.bias": 0.1 * torch.randn(16 * channels[0], generator=g),
        "init_conv.0.module.weight": torch.randn(channels[0], channels[0], 3, 3, generator=g),
        "init_conv.0.module.bias": 0.1 * torch.randn(channels[0], generator=g),
    }
    for i in range(depth):
        cin, cout = channels[i], channels[i + 1]
        state[f"ScaleBlocks.{i}.convolv.0.module.weight"] = torch.randn(
            cout, cin, 3, 3, generator=g
        )
        state[f"ScaleBlocks.{i}.convolv.0.module.bias"] = 0.1 * torch.randn(cout, generator=g)
        state[f"ScaleBlocks.{i}.convolv.3.module.weight"] = torch.randn(
            cout, cout, 3, 3, generator=g
        )
        state[f"ScaleBlocks.{i}.convolv.3.module.bias"] = 0.1 * torch.randn(cout, generator=g)
    for k, c in enumerate(channels):
        state[f"toRGB.{k}.module.weight"] = torch.randn(image_channels, c, 1, 1, generator=g)
        state[f"toRGB.{k}.module.bias"] = 0.1 * torch.randn(image_channels, generator=g)
    return state


def random_segal_discriminator_state(channels=PAPER_CHANNELS, image_channels=3, seed=1):
    """A discriminator state in the paper's layout: ScaleBlocks.0 is the highest resolution."""
    g = torch.Generator().manual_seed(seed)
    depth = len(channels) - 1
    state = {
        "current_size": torch.tensor(4 * 2**depth),
        "current_depth": torch.tensor(depth),
        "alpha": torch.tensor(0.0),
    }
    for k, c in enumerate(channels):
        state[f"fromRGB.{k}.module.weight"] = torch.randn(c, image_channels, 1, 1, generator=g)
        state[f"fromRGB.{k}.module.bias"] = 0.1 * torch.randn(c, generator=g)
    for i in range(depth):
        high, low = channels[depth - i], channels[depth - i - 1]
        state[f"ScaleBlocks.{i}.convolv.0.module.weight"] = torch.randn(
            low, high, 3, 3, generator=g
        )
        state[f"ScaleBlocks.{i}.convolv.0.module.bias"] = 0.1 * torch.randn(low, generator=g)
        state[f"ScaleBlocks.{i}.convolv.2.module.weight"] = torch.randn(low, low, 3, 3, generator=g)
        state[f"ScaleBlocks.{i}.convolv.2.module.bias"] = 0.1 * torch.randn(low, generator=g)
    c0 = channels[0]
    state["DecisionBlock.0.module.weight"] = torch.randn(c0, c0 + 1, 3, 3, generator=g)
    state["DecisionBlock.0.module.bias"] = 0.1 * torch.randn(c0, generator=g)
    state["DecisionBlock.2.module.weight"] = torch.randn(c0, c0, 4, 4, generator=g)
    state["DecisionBlock.2.module.bias"] = 0.1 * torch.randn(c0, generator=g)
    state["DecisionLinear.module.weight"] = torch.randn(1, c0, generator=g)
    state["DecisionLinear.module.bias"] = 0.1 * torch.randn(1, generator=g)
    return state


def _he(weight):
    return math.sqrt(2.0 / math.prod(weight.shape[1:]))


def _pixel_norm(x):
    return x * (x.pow(2).mean(dim=1, keepdim=True) + 1e-8).rsqrt()


class _Equalized(nn.Module):
    """As the authors do it: run the layer, then multiply its output (bias included) by he."""

    def __init__(self, weight, bias, padding=0):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(bias.clone())
        self.he = _he(weight)
        self.padding = padding

    def forward(self, x):
        if self.weight.ndim == 2:
            y = F.linear(x, self.weight, self.bias)
        else:
            y = F.conv2d(x, self.weight, self.bias, padding=self.padding)
        return y * self.he


class ReferenceGenerator(nn.Module):
    """The described forward pass at full depth, step by step."""

    def __init__(self, state):
        super().__init__()
        self.latent = _Equalized(
            state["latent_linear.0.module.weight"], state["latent_linear.0.module.bias"]
        )
        self.init = _Equalized(
            state["init_conv.0.module.weight"], state["init_conv.0.module.bias"], 1
        )
        depth = len({k.split(".")[1] for k in state if k.startswith("ScaleBlocks.")})
        self.blocks = nn.ModuleList()
        for i in range(depth):
            p = f"ScaleBlocks.{i}.convolv."
            self.blocks.append(
                nn.ModuleList(
                    [
                        _Equalized(state[p + "0.module.weight"], state[p + "0.module.bias"], 1),
                        _Equalized(state[p + "3.module.weight"], state[p + "3.module.bias"], 1),
                    ]
                )
            )
        self.to_rgb = _Equalized(
            state[f"toRGB.{depth}.module.weight"], state[f"toRGB.{depth}.module.bias"]
        )

    def forward(self, z):
        x = _pixel_norm(z)
        x = F.leaky_relu(self.latent(x), 0.2)
        x = x.view(z.shape[0], -1, 4, 4)
        x = _pixel_norm(F.leaky_relu(self.init(x), 0.2))
        for conv_a, conv_b in self.blocks:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = _pixel_norm(F.leaky_relu(conv_a(x), 0.2))
            x = _pixel_norm(F.leaky_relu(conv_b(x), 0.2))
        return self.to_rgb(x)


def reference_discriminator(state, image):
    """The paper's discriminator at full depth: fromRGB, blocks (highest first), mbstd, decision."""

    def eq(prefix, x, padding=0):
        w, b = state[prefix + ".weight"], state[prefix + ".bias"]
        y = F.linear(x, w, b) if w.ndim == 2 else F.conv2d(x, w, b, padding=padding)
        return y * _he(w)

    depth = len({k.split(".")[1] for k in state if k.startswith("ScaleBlocks.")})
    x = eq(f"fromRGB.{depth}.module", image)
    for i in range(depth):
        x = F.leaky_relu(eq(f"ScaleBlocks.{i}.convolv.0.module", x, 1), 0.2)
        x = F.leaky_relu(eq(f"ScaleBlocks.{i}.convolv.2.module", x, 1), 0.2)
        x = F.avg_pool2d(x, 2)
    std = torch.sqrt((x - x.mean(dim=0, keepdim=True)).pow(2).mean(dim=0) + 1e-8).mean()
    x = torch.cat([x, std.view(1, 1, 1, 1).repeat(x.shape[0], 1, 4, 4)], dim=1)
    x = F.leaky_relu(eq("DecisionBlock.0.module", x, 1), 0.2)
    x = F.leaky_relu(eq("DecisionBlock.2.module", x), 0.2)
    return eq("DecisionLinear.module", x.view(x.shape[0], -1))


def reference_image(raw):
    """The paper's output convention: 3 channels on [0, 1] -> clamp and average."""
    return raw.clamp(0, 1).mean(dim=1, keepdim=True)
