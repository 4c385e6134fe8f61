"""The FID Inception network: layout, strict loading, and agreement with pytorch-fid's own
implementation on the same (random) weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cxrgan_desktop.metrics.fid_features import FeatureExtractor
from cxrgan_desktop.metrics.inception import FIDInception, InceptionLayoutError, build_fid_inception
from tests.reference.fid_random_weights import layout, random_state, reference_inputs

REFERENCE = Path(__file__).parent / "reference" / "fid_reference_features.npz"


@pytest.fixture(scope="module")
def state():
    return random_state(0)


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE) as data:
        return data["features"]


def _relative_error(features: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(features - reference).max() / np.abs(reference).max())


def test_layout_is_the_specified_one(state):
    net = FIDInception()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(layout()) == 94
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")}
    assert ours == {k: tuple(v.shape) for k, v in state.items()}


def test_features_match_pytorch_fid_on_the_same_weights(state, reference):
    net = build_fid_inception(state)
    with torch.inference_mode():
        features = net(reference_inputs()).double().numpy()
    assert features.shape == (2, 2048)
    assert _relative_error(features, reference) < 1e-5


def test_the_reference_catches_a_missing_quirk(state, reference):
    """Mixed_7c pooling by average (torchvision's way) instead of max must show."""
    net = build_fid_inception(state)
    net.Mixed_7c.max_pool_branch = False
    with torch.inference_mode():
        features = net(reference_inputs()).double().numpy()
    assert _relative_error(features, reference) > 1e-3


def test_extractor_folds_batch_norm_without_changing_features(state, reference):
    extractor = FeatureExtractor(build_fid_inception(state))
    grey = (reference_inputs()[:, :1] + 1) / 2  # back to [0, 1] grey; 299 px: no resize
    assert _relative_error(extractor.batch_features(grey).astype(np.float64), reference) < 1e-5
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in extractor.net.modules())


def test_strict_load_names_every_problem(state):
    broken = dict(state)
    del broken["Mixed_6b.branch7x7_2.conv.weight"]
    broken["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's ImageNet head
    broken["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    with pytest.raises(InceptionLayoutError) as caught:
        build_fid_inception(broken)
    problems = " | ".join(caught.value.problems)
    assert "missing Mixed_6b.branch7x7_2.conv.weight" in problems
    assert "fc.weight has shape [1000, 2048], expected [1008, 2048]" in problems
    assert "unexpected AuxLogits.fc.weight" in problems


def test_num_batches_tracked_is_optional(state):
    with_counters = dict(state)
    with_counters["Conv2d_1a_3x3.bn.num_batches_tracked"] = torch.tensor(0)
    build_fid_inception(with_counters)  # no error
