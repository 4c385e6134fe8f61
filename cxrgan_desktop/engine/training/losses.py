"""WGAN-GP with the drift term (Gulrajani et al. 2017; Karras et al. 2018), as Segal et al.
train: D minimises D(fake) - D(real) + lambda * (|grad D(x_hat)| - 1)^2 + drift * D(real)^2."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DiscriminatorLoss:
    total: torch.Tensor
    wasserstein: float  # E[D(real)] - E[D(fake)], the critic's distance estimate
    gradient_penalty: float
    drift: float


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """(||grad_x D(x)||_2 - 1)^2 at random points between real and fake images."""
    # drawn on the CPU from the run's generator, so a resumed run repeats the same draws
    mix = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
    points = torch.lerp(fake.detach(), real.detach(), mix).requires_grad_(True)
    scores = D(points)
    (grads,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    return (grads.flatten(1).norm(2, dim=1) - 1.0).square().mean()


def discriminator_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, gp_lambda: float,
                       drift: float, generator: torch.Generator | None = None
                       ) -> DiscriminatorLoss:
    real_scores = D(real)
    fake_scores = D(fake.detach())
    penalty = gradient_penalty(D, real, fake, generator)
    drift_term = real_scores.square().mean()
    total = (fake_scores.mean() - real_scores.mean() + gp_lambda * penalty
             + drift * drift_term)
    return DiscriminatorLoss(total, float((real_scores.mean() - fake_scores.mean()).detach()),
                             float(penalty.detach()), float(drift_term.detach()))


def generator_loss(D: nn.Module, fake: torch.Tensor) -> torch.Tensor:
    return -D(fake).mean()
