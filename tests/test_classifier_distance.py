"""The classifier-feature Fréchet distance: the features are the head's input, and the
distance equals the textbook formula computed directly with scipy's matrix square root."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from cxrgan_desktop.engine.classifier.model import ClassifierSpec, PathologyClassifier
from cxrgan_desktop.metrics.classifier_distance import (
    classifier_features,
    classifier_frechet_distance,
)


def test_features_are_what_the_head_reads():
    torch.manual_seed(0)
    classifier = PathologyClassifier(ClassifierSpec("densenet-small", ("A", "B"), 32)).eval()
    images = torch.rand(5, 1, 64, 64)
    features = classifier_features(classifier, [images[:3], images[3:]])
    assert features.shape == (5, classifier.network.classifier.in_features)
    head = classifier.network.classifier
    with torch.no_grad():
        logits = head(torch.from_numpy(features).float())
        assert torch.allclose(logits, classifier(images), atol=1e-5)


def test_the_distance_matches_a_direct_scipy_computation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 12))
    b = rng.normal(size=(250, 12)) @ rng.normal(size=(12, 12)) * 0.5 + 0.3
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    expected = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * root))
    assert classifier_frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert classifier_frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
