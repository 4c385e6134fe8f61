"""A Fréchet distance on a pathology classifier's penultimate features.

FID needs Inception's weights, which an offline install may lack. The classifier that LCO
uses is always at hand, and its pooled penultimate features describe what it reads in an
image, so the Fréchet distance between two sets' Gaussians in that space is a usable, if
not comparable, stand-in: it ranks models trained on the same data, but its values mean
nothing next to a published FID (other network, other dimension, other data). Reports that
use it must say which classifier's features it used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
import torch

from cxrgan_desktop.metrics.fid_features import FeatureExtractor
from cxrgan_desktop.metrics.frechet import feature_statistics, frechet_distance


class FeatureNetwork(Protocol):
    """What the distance needs of a classifier (the engine's ``PathologyClassifier`` is one):
    described here so that the metrics layer does not import the engine."""

    def to(self, device: str | torch.device) -> FeatureNetwork: ...

    def eval(self) -> FeatureNetwork: ...

    def features(self, images: torch.Tensor) -> torch.Tensor: ...


def classifier_features(classifier: FeatureNetwork, batches: Iterable[torch.Tensor],
                        device: str | torch.device = "cpu") -> np.ndarray:
    """Penultimate features ``[N, D]`` (float64) of image batches ``[B, 1, H, W]`` in [0, 1],
    with the classifier in evaluation mode (batch norm's running statistics, so a sample's
    features do not depend on its batch)."""
    classifier = classifier.to(device).eval()
    rows = [classifier.features(batch.to(device)).double().cpu().numpy() for batch in batches]
    if not rows:
        raise ValueError("no images")
    return np.concatenate(rows)


def classifier_frechet_distance(features1: np.ndarray, features2: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two ``[N, D]`` feature sets (the same
    formula as FID, :func:`cxrgan_desktop.metrics.frechet.frechet_distance`)."""
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    return frechet_distance(mu1, sigma1, mu2, sigma2)


class ClassifierFeatureExtractor(FeatureExtractor):
    """FID's feature pipeline on a pathology classifier instead of Inception: the same
    batching, progress, cancel and cache, the classifier's own input size and resize (it
    brings any image to its input size itself), its pooled penultimate features."""

    def __init__(self, classifier: FeatureNetwork, feature_dim: int,
                 device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.feature_dim = feature_dim
        self.net = classifier.to(self.device).eval()

    def batch_features(self, images: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return self.net.features(images.to(self.device, torch.float32)).float().cpu().numpy()
