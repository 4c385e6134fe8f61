"""Projection: find the latent whose image reproduces a given radiograph (GAN inversion).

After stylegan2-ada-pytorch's projector (Karras et al. 2020), written for this generator:
Adam on the latent z, from several random starts, keeping the start whose final loss is
lowest. Measured figures on held-out phantoms are in ``tests/test_projection.py`` and
``tests/benchmarks/bench_projection.py``: on 20 held-out phantoms the bundled 64 px demo
model reaches PSNR 22.48 dB and SSIM 0.7826 (mean; SSIM 0.7143 to 0.8170) with the defaults
(4 starts x 300 steps), from 0.6028 for the best random start, and recovers a generated
image at SSIM 0.99. No published figures exist for chest X-ray GAN inversion to compare with.

The loss, per image, at the generator's resolution (images in [0, 1]):

    mean |G(z) - target|  +  (1 - MS-SSIM(G(z), target))
        +  classifier_weight * (1 - cos(f(G(z)), f(target)))

- pixel error: L1 (mean absolute error), as in Zhao et al.'s "Loss functions for image
  restoration" (IEEE TCI 2017), where L1 with MS-SSIM beat L2 with it: L2's small
  gradients near the optimum leave the last grey-level errors unfixed;
- MS-SSIM: :mod:`cxrgan_desktop.engine.msssim` (standard 11-px Gaussian window, as many of
  the five scales as fit: three at 64 px, five from 176 px);
- optionally the cosine distance between the classifier's pooled penultimate features
  (``DenseNet.embed``), so that the reconstruction also reads alike to the classifier the
  findings sliders use; scale-free, so the weight means the same for any classifier.

The latent lives on the sphere. The generator pixel-normalises z first
(``z / sqrt(mean(z^2))``), so only its direction decides the image. Each Adam step is
followed by a projection back to rms 1 (|z| = sqrt(d), where N(0, I) draws concentrate), so
the learning rate is an angle per step of constant meaning and the latent reported is the
one the generator's first layer sees. The learning rate ramps up over the first 5 % of steps
and down (cosine) over the last 25 %, as stylegan2-ada's projector does, so that the final
loss is not that of one noisy step. The default rate, 0.1, was chosen on the demo model
(64 px, d = 128; 2 starts x 150 steps): a generated image was recovered at PSNR 29.7 / 34.3
/ 41.8 / 54.0 dB with rates 0.02 / 0.05 / 0.1 / 0.2, and 8 held-out phantoms reached mean SSIM
0.763 / 0.768 / 0.775 at 0.05 / 0.1 / 0.2; 0.1 is stylegan2-ada's initial rate too.

Start r (r = 0 .. restarts - 1) is image r of ``cxrgan generate --seed seed``
(``default_rng([seed, r])``), so that the starts can be looked at and the result repeated.
All starts run together in one batch; the loss is a sum of per-start losses and Adam acts
per coordinate, so the starts do not influence each other.

How far the result is from the prior (:class:`Typicality`): after pixel normalisation the
prior is the uniform distribution on the sphere, whose density is the same for every
direction, so no likelihood can say one latent is less probable than another (and |z|, or
a chi-square percentile of it, is fixed by the normalisation). What does distinguish a
direction the generator met in training from an unusual one is the typical set: by
concentration of measure, the coordinates of a uniformly drawn direction, scaled to rms 1,
look like 512 independent N(0, 1) draws. The measure is therefore the Kolmogorov-Smirnov
distance between the latent's coordinates and N(0, 1), reported as the fraction of
``PRIOR_DRAWS`` fixed prior draws that are at least as far (about uniform on [0, 1] for a
typical latent; below 0.01 means fewer than 1 % of prior draws look as unusual, e.g. a few
coordinates much larger than the rest). It needs no choice of moment and catches any
departure of the marginal (heavy tails, a bimodal shape). The angle from the chosen start
says how far the optimisation moved.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from cxrgan_desktop.core.jobs import ProgressFn, check_cancel, no_progress
from cxrgan_desktop.engine.checkpoints import LoadedGenerator
from cxrgan_desktop.engine.classifier.model import PathologyClassifier
from cxrgan_desktop.engine.lco import DifferentiableGenerator, frozen
from cxrgan_desktop.engine.msssim import ms_ssim, ms_ssim_scales, ssim
from cxrgan_desktop.engine.render import Renderer, latents_for_seed
from cxrgan_desktop.engine.training.preprocess import make_square, quantise, resize_square
from cxrgan_desktop.imaging.png16 import to_uint16

DEFAULT_RESTARTS = 4
DEFAULT_STEPS = 300
DEFAULT_LEARNING_RATE = 0.1
RAMP_UP, RAMP_DOWN = 0.05, 0.25  # fractions of the steps (stylegan2-ada's projector)
PRIOR_DRAWS = 4096
PRIOR_SEED = 20240524  # the reference draws of the typicality measure: fixed, not the user's
PIXEL_LOSS = "L1 (mean absolute error)"
SQUARE = "crop"  # the training cache's default (engine/training/preprocess.py)
BIT_DEPTH = 16  # the training cache's default (TrainConfig.bit_depth)


def prepare_target(pixels: np.ndarray, resolution: int) -> np.ndarray:
    """A read image ([H, W] in [0, 1]) as the training cache made its images: centre crop to
    a square, Lanczos to ``resolution``, 16-bit values. [R, R] float32."""
    square = resize_square(make_square(np.asarray(pixels, dtype=np.float32), SQUARE),
                           resolution)
    return (quantise(square, BIT_DEPTH).astype(np.float64) / 65535.0).astype(np.float32)


def to_16bit(image: np.ndarray) -> np.ndarray:
    """The values the 16-bit PNG of ``image`` holds (:func:`png16.to_uint16`, rounded in
    float64 as ``cxrgan generate`` writes it), as float32 in [0, 1]."""
    return (to_uint16(image).astype(np.float64) / 65535.0).astype(np.float32)


def normalised(z: np.ndarray | torch.Tensor) -> Any:
    """Rows scaled to rms 1 (|z| = sqrt(d)): what the generator's pixel norm makes of them."""
    if isinstance(z, torch.Tensor):
        return z / z.square().mean(dim=-1, keepdim=True).sqrt()
    z = np.asarray(z, dtype=np.float64)
    return (z / np.sqrt(np.mean(z * z, axis=-1, keepdims=True))).astype(np.float32)


def ks_statistics(z: torch.Tensor) -> torch.Tensor:
    """Per row: the Kolmogorov-Smirnov distance of its coordinates (rms 1) from N(0, 1)."""
    x = torch.sort(normalised(z.double()), dim=-1).values
    n = x.shape[-1]
    cdf = torch.special.ndtr(x)
    upper = torch.arange(1, n + 1, dtype=x.dtype) / n - cdf
    lower = cdf - torch.arange(0, n, dtype=x.dtype) / n
    return torch.maximum(upper.amax(dim=-1), lower.amax(dim=-1))


_PRIOR_KS: dict[int, np.ndarray] = {}


def prior_ks(latent_size: int) -> np.ndarray:
    """The KS distances of ``PRIOR_DRAWS`` fixed N(0, I) draws, sorted (cached per size)."""
    if latent_size not in _PRIOR_KS:
        draws = np.random.default_rng(PRIOR_SEED).standard_normal((PRIOR_DRAWS, latent_size))
        _PRIOR_KS[latent_size] = np.sort(ks_statistics(torch.from_numpy(draws)).numpy())
    return _PRIOR_KS[latent_size]


@dataclass(frozen=True)
class Typicality:
    """How the latent compares with prior draws (see the module docstring for why this)."""

    ks_distance: float
    prior_fraction_as_far: float  # of PRIOR_DRAWS prior draws, those at least as far
    angle_from_start_degrees: float

    def to_json(self) -> dict[str, Any]:
        return {"measure": "Kolmogorov-Smirnov distance of the latent's coordinates (scaled "
                           "to rms 1, as the generator's pixel norm does) from N(0, 1), and "
                           f"the fraction of {PRIOR_DRAWS} N(0, I) draws at least as far "
                           "(about uniform on [0, 1] for a typical latent; near 0: unusual)",
                "ks_distance": self.ks_distance,
                "prior_fraction_as_far": self.prior_fraction_as_far,
                "prior_draws": PRIOR_DRAWS,
                "angle_from_start_degrees": self.angle_from_start_degrees}


def typicality(z: np.ndarray, start: np.ndarray) -> Typicality:
    """The measure for one latent ``z`` [d] that the optimisation began at ``start`` [d]."""
    reference = prior_ks(z.shape[-1])
    distance = float(ks_statistics(torch.from_numpy(np.asarray(z, np.float64)[None]))[0])
    as_far = float(len(reference) - np.searchsorted(reference, distance, side="left"))
    a, b = np.asarray(z, np.float64), np.asarray(start, np.float64)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return Typicality(distance, as_far / len(reference),
                      math.degrees(math.acos(max(-1.0, min(1.0, cosine)))))


@dataclass
class Projection:
    """The outcome. ``latent`` [1, d] float32 at rms 1 renders ``reconstruction`` through
    :class:`~cxrgan_desktop.engine.render.Renderer` (as ``cxrgan generate --latents`` does);
    both images are [R, R] float32 holding 16-bit values, and the figures compare them."""

    latent: np.ndarray
    target: np.ndarray = field(repr=False)
    reconstruction: np.ndarray = field(repr=False)
    psnr: float
    ssim: float
    ms_ssim: float
    best_restart: int
    restart_losses: list[float]  # final loss of each start
    loss_curve: list[float]  # the chosen start's loss before each step, and after the last
    start_latents: np.ndarray = field(repr=False)  # [restarts, d], as drawn
    typicality: Typicality
    settings: dict[str, Any]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (peak 1); inf when equal."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def image_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Single-scale SSIM (standard definition, float64) of two [R, R] images in [0, 1]."""
    return float(ssim(torch.from_numpy(np.asarray(a, np.float64))[None, None],
                      torch.from_numpy(np.asarray(b, np.float64))[None, None])[0])


def _learning_rate(base: float, step: int, steps: int) -> float:
    """Step ``step`` of ``steps`` (0-based): ramp up, hold, cosine ramp down."""
    down = min(1.0, (1.0 - step / steps) / RAMP_DOWN)
    up = min(1.0, (step + 1) / (RAMP_UP * steps))
    return base * up * (0.5 - 0.5 * math.cos(down * math.pi))


def _features(classifier: PathologyClassifier, images: torch.Tensor) -> torch.Tensor:
    """Pooled penultimate features with gradients (``features`` is the no-grad version)."""
    return classifier.network.embed(classifier._prepare(images))


def project(model: LoadedGenerator, image: np.ndarray, *, restarts: int = DEFAULT_RESTARTS,
            steps: int = DEFAULT_STEPS, lr: float = DEFAULT_LEARNING_RATE,
            classifier: PathologyClassifier | None = None, classifier_weight: float = 0.0,
            seed: int = 0, device: torch.device | str = "cpu",
            progress: ProgressFn = no_progress,
            cancel: threading.Event | None = None) -> Projection:
    """Fit a latent to ``image`` ([H, W] in [0, 1], any size: prepared with
    :func:`prepare_target`). Raises :class:`~cxrgan_desktop.core.jobs.Cancelled` when
    ``cancel`` is set (checked before every step)."""
    if restarts < 1:
        raise ValueError(f"restarts must be at least 1, got {restarts}")
    if steps < 0:
        raise ValueError(f"steps must not be negative, got {steps}")
    if not lr > 0:
        raise ValueError(f"the learning rate must be positive, got {lr}")
    if classifier_weight < 0:
        raise ValueError(f"the classifier weight must not be negative, got {classifier_weight}")
    if classifier_weight > 0 and classifier is None:
        raise ValueError("a classifier weight needs a classifier")
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {pixels.shape}")
    device = torch.device(device)
    resolution = model.resolution
    target_np = prepare_target(pixels, resolution)
    target = torch.from_numpy(target_np)[None, None].to(device)
    generator = DifferentiableGenerator(model).to(device)
    use_classifier = classifier is not None and classifier_weight > 0
    networks: list[torch.nn.Module] = [generator]
    if use_classifier and classifier is not None:
        networks.append(classifier.to(device))
    starts = latents_for_seed(seed, restarts, model.config.latent_size)
    z = normalised(torch.from_numpy(starts)).to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.999), eps=1e-8)
    curves: list[np.ndarray] = []
    with frozen(*networks):
        target_features = None
        if use_classifier and classifier is not None:
            with torch.no_grad():
                target_features = _features(classifier, target)
        for step in range(steps + 1):
            check_cancel(cancel)
            images = generator(z)
            loss = (images - target).abs().flatten(1).mean(1) + 1.0 - ms_ssim(
                images, target.expand_as(images))
            if target_features is not None and classifier is not None:
                cos = torch.nn.functional.cosine_similarity(
                    _features(classifier, images), target_features.expand(len(z), -1), dim=1)
                loss = loss + classifier_weight * (1.0 - cos)
            curves.append(loss.detach().cpu().numpy().astype(np.float64))
            if step == steps:
                break
            for group in optimiser.param_groups:
                group["lr"] = _learning_rate(lr, step, steps)
            optimiser.zero_grad(set_to_none=True)
            loss.sum().backward()
            optimiser.step()
            with torch.no_grad():
                z.copy_(normalised(z))
            progress((step + 1) / (steps + 1),
                     f"step {step + 1}/{steps}, best loss {float(loss.detach().min()):.4f}")
    final = curves[-1]
    best = int(np.argmin(final))
    latent = normalised(z.detach()[best:best + 1].double()).float().cpu().numpy()
    reconstruction = to_16bit(Renderer(model, device).render(latent)[0, 0].numpy())
    progress(1.0, f"done, best loss {final[best]:.4f}")
    return Projection(
        latent=latent, target=target_np, reconstruction=reconstruction,
        psnr=psnr(reconstruction, target_np), ssim=image_ssim(reconstruction, target_np),
        ms_ssim=float(ms_ssim(torch.from_numpy(reconstruction.astype(np.float64))[None, None],
                              torch.from_numpy(target_np.astype(np.float64))[None, None])[0]),
        best_restart=best, restart_losses=[float(v) for v in final],
        loss_curve=[float(c[best]) for c in curves], start_latents=starts,
        typicality=typicality(latent[0], starts[best]),
        settings={"restarts": restarts, "steps": steps, "learning_rate": lr,
                  "learning_rate_schedule": f"linear ramp-up over the first {RAMP_UP:.0%} of "
                  f"steps, cosine ramp-down over the last {RAMP_DOWN:.0%}",
                  "seed": seed, "starts": "image r of cxrgan generate --seed SEED, r = 0.."
                  "restarts-1", "pixel_loss": PIXEL_LOSS,
                  "ms_ssim_scales": ms_ssim_scales(resolution),
                  "classifier_weight": classifier_weight if use_classifier else 0.0,
                  "latent": "optimised on the sphere |z| = sqrt(d) (projected after each step)",
                  "resolution": resolution, "target": f"centre {SQUARE} to a square, Lanczos "
                  f"to {resolution} px, {BIT_DEPTH}-bit values (as the training cache)"})
