"""The truncation trick for PGGAN: trade diversity for typicality with one number, psi.

Why not scale z: the generator pixel-normalises z first, so only z's direction reaches the
network and ``psi * z`` renders exactly the image of ``z`` (BigGAN's z-space truncation,
Brock et al. 2019, needs a generator that sees |z|). The StyleGAN form (Karras et al. 2019,
in W) does carry over: pull the first *feature* activation towards its mean over the prior,

    h' = mean + psi * (h - mean),

where ``h = LeakyReLU(dense(pixel_norm(z)))`` is the output of the generator's first dense
layer (the C0 x 4 x 4 map, before the first 3x3 convolution) and ``mean`` its average over
latents drawn from the prior. psi = 1 leaves every image as it was (the renderer then takes
its unchanged code path, bit for bit); psi = 0 renders the "mean image" for every latent; in
between, images become more typical and less varied. The pull happens after the LeakyReLU:
before it, the mean over the symmetric prior is just the dense layer's bias, and truncating
there would be the same as shrinking the normalised z.

The mean is estimated from :data:`MEAN_SAMPLES` latents made by the generate recipe with
seed :data:`MEAN_SEED` (``numpy.random.default_rng([MEAN_SEED, i]).standard_normal(d)``,
i = 0..MEAN_SAMPLES-1: the latents of ``cxrgan generate --seed 24 -n 4096``), the dense
layer run in float32 on the CPU and the average accumulated in float64, so that every device
and precision truncates towards the same point. It is computed once per model (SHA-256 of its
file and a digest of the dense layer's weights) and kept in memory for the process.

Only 0 <= psi <= 1 is accepted: psi > 1 would extrapolate away from the mean into activations
the generator never saw in training, which is not what anyone asking for "truncation" wants.
"""

from __future__ import annotations

import hashlib
import math
import threading
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.inference import (
    PIXEL_NORM_EPS,
    InferenceGenerator,
    _conv_lrelu,
    _pixel_norm_,
)
from cxrgan_desktop.engine.layers import pixel_norm
from cxrgan_desktop.engine.pggan import Generator

MEAN_SAMPLES = 4096
MEAN_SEED = 24
MEAN_CHUNK = 512  # latents per dense-layer pass while averaging (bounds the memory)
SPACE = ("LeakyReLU(dense(pixel_norm(z))): the generator's first activation, C0 x 4 x 4, "
         "before its first 3x3 convolution")

_cache: dict[tuple[str, str, int, int], torch.Tensor] = {}
_cache_lock = threading.Lock()


def check_psi(psi: object) -> float:
    """``psi`` as a float in [0, 1], or a ``ValueError`` that says why not."""
    if isinstance(psi, bool) or not isinstance(psi, int | float | np.floating | np.integer):
        raise ValueError(f"truncation psi must be a number between 0 and 1, got {psi!r}")
    value = float(psi)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(
            f"truncation psi must be between 0 and 1 (1: no truncation, 0: every latent gives "
            f"the mean image), got {psi!r}; values above 1 would extrapolate beyond what the "
            "generator was trained on and are refused")
    return value


def prior_latents(count: int, latent_size: int, seed: int = MEAN_SEED,
                  start: int = 0) -> np.ndarray:
    """The generate recipe's latents (as :func:`engine.render.latents_for_seed`; repeated
    here because the renderer imports this module)."""
    out = np.empty((count, latent_size), dtype=np.float32)
    for row in range(count):
        out[row] = np.random.default_rng([seed, start + row]).standard_normal(latent_size)
    return out


def _dense_digest(generator: Generator) -> str:
    fc = generator.latent_fc
    digest = hashlib.sha256()
    for tensor in (fc.weight, fc.bias):
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def dense_activation(generator: Generator, z: torch.Tensor) -> torch.Tensor:
    """``LeakyReLU(dense(pixel_norm(z)))`` flattened, [N, C0 * 16]: the truncated space."""
    return F.leaky_relu(generator.latent_fc(pixel_norm(z)), generator.config.leaky_slope)


def mean_activation(model: LoadedGenerator, samples: int = MEAN_SAMPLES,
                    seed: int = MEAN_SEED) -> torch.Tensor:
    """The prior mean of the dense activation, [C0 * 16] float32 on the CPU (cached).

    A copy of the cached tensor is returned, so that no caller can change the cache.
    """
    if samples < 1:
        raise ValueError(f"the mean needs at least one sample, got {samples}")
    generator = model.generator
    key = (model.sha256, _dense_digest(generator), samples, seed)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            cached = _average(generator, samples, seed)
            _cache[key] = cached
    return cached.clone()


@torch.no_grad()
def _average(generator: Generator, samples: int, seed: int) -> torch.Tensor:
    fc = generator.latent_fc
    weight = fc.scaled_weight().detach().to("cpu", torch.float32)
    bias = fc.bias.detach().to("cpu", torch.float32)
    slope = generator.config.leaky_slope
    latent_size = generator.config.latent_size
    total = torch.zeros(weight.shape[0], dtype=torch.float64)
    for start in range(0, samples, MEAN_CHUNK):
        count = min(MEAN_CHUNK, samples - start)
        z = torch.from_numpy(prior_latents(count, latent_size, seed, start))
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)
        h = F.leaky_relu(F.linear(z, weight, bias), slope)
        total += h.double().sum(dim=0)
    return (total / samples).float()


def record(psi: float) -> dict[str, Any]:
    """What a manifest says about the truncation used (psi = 1 included: it says none)."""
    return {"psi": float(psi), "space": SPACE, "mean_samples": MEAN_SAMPLES,
            "mean_seed": MEAN_SEED,
            "mean_latents": f"numpy.random.default_rng([{MEAN_SEED}, i]).standard_normal("
                            f"latent_size), i < {MEAN_SAMPLES}"}


def psi_of(data: object) -> float:
    """psi from a manifest's or record's ``truncation`` entry: a number, a :func:`record`
    dict, or nothing (a folder made before truncation existed: 1, which it was)."""
    if isinstance(data, dict):
        data = data.get("psi", 1.0)
    if data is None:
        return 1.0
    return check_psi(data)


class TruncatedGenerator(nn.Module):
    """A rendering network (the fast :class:`InferenceGenerator`, or the training
    :class:`Generator` for a model stored mid fade-in) with its dense activation pulled
    towards ``mean`` by ``psi``; ``forward`` and ``differentiable`` as the wrapped network's.

    The wrapped network's own forward cannot be hooked (the fast one is a single function),
    so its steps after the dense layer are repeated here; a test holds them equal at psi = 1.
    """

    def __init__(self, network: InferenceGenerator | Generator, mean: torch.Tensor,
                 psi: float) -> None:
        super().__init__()
        self.network = network
        self.psi = check_psi(psi)
        self.register_buffer("mean", mean.detach().reshape(-1).clone())

    @property
    def config(self) -> Any:
        return self.network.config

    def _truncate(self, h: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(h.dtype)
        return mean + self.psi * (h - mean)

    @torch.inference_mode()
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if isinstance(self.network, InferenceGenerator):
            return self._fast(z, grad=False)
        return self._training(z)

    def differentiable(self, z: torch.Tensor) -> torch.Tensor:
        """``forward`` with autograd to z."""
        if isinstance(self.network, InferenceGenerator):
            return self._fast(z, grad=True)
        return self._training(z)

    def _fast(self, z: torch.Tensor, grad: bool) -> torch.Tensor:
        net = self.network
        n, c0, slope = z.shape[0], net.config.channels[0], net.slope
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)
        h = F.leaky_relu(F.linear(z, net.fc_weight, net.fc_bias), slope)
        x = self._truncate(h).reshape(n, c0, 4, 4).contiguous(memory_format=torch.channels_last)
        for kind, weight, bias in net.convs:
            if not grad:
                x = _pixel_norm_(_conv_lrelu(kind, x, weight, bias, slope))
                continue
            if kind == "up":
                x = F.conv_transpose2d(x, weight, bias, stride=2, padding=1)
            else:
                x = F.conv2d(x, weight, bias, padding=1)
            x = F.leaky_relu(x, slope)
            x = x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)
        return F.conv2d(x, net.out_weight, net.out_bias).contiguous()

    def _training(self, z: torch.Tensor) -> torch.Tensor:
        g = self.network
        if z.ndim != 2 or z.shape[1] != g.config.latent_size:
            raise ValueError(f"expected latents of shape [N, {g.config.latent_size}], "
                             f"got {tuple(z.shape)}")
        slope = g.config.leaky_slope
        x = self._truncate(dense_activation(g, z)).reshape(z.shape[0], g.config.channels[0],
                                                            4, 4)
        x = pixel_norm(F.leaky_relu(g.init_conv(x), slope))
        depth = g.current_depth
        if not g.fading:
            for block in g.blocks[:depth]:
                x = block(x)
            return g.to_image[depth](x)
        for block in g.blocks[:depth - 1]:
            x = block(x)
        new = g.to_image[depth](g.blocks[depth - 1](x))
        old = F.interpolate(g.to_image[depth - 1](x), scale_factor=2.0, mode="nearest")
        return torch.lerp(old, new, g.alpha)


def truncated(network: InferenceGenerator | Generator, model: LoadedGenerator, psi: float
              ) -> InferenceGenerator | Generator | TruncatedGenerator:
    """``network`` itself at psi = 1 (today's path, unchanged), else it truncated by psi."""
    psi = check_psi(psi)
    if psi == 1.0:
        return network
    return TruncatedGenerator(network, mean_activation(model), psi)
