"""Spherical interpolation and the angle measures of latent paths (engine/interpolation.py).

References are computed another way: angles by arccos of normalised dot products, the
angle percentile by Monte Carlo draws of N(0, I), the great circle by a least-squares fit in
the plane of the two endpoints, images by a plain ``Renderer.render`` of one latent, and
probabilities by a direct classifier call.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrgan_desktop.engine.checkpoints import load_generator
from cxrgan_desktop.engine.classifier.files import load_classifier
from cxrgan_desktop.engine.classifier.installed import resolve_classifier
from cxrgan_desktop.engine.interpolation import (
    angle_between,
    angle_percentile,
    interpolation_path,
    rotate_towards,
    slerp,
    tangent_direction,
)
from cxrgan_desktop.engine.render import Renderer, latents_for_seed
from cxrgan_desktop.store import zoo


def _arccos_deg(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = a64 @ b64 / np.linalg.norm(a64) / np.linalg.norm(b64)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


@pytest.fixture(scope="module")
def demo():
    return load_generator(zoo.resolve_model("demo-phantom-64"))


@pytest.fixture(scope="module")
def demo_classifier():
    return load_classifier(resolve_classifier("demo-phantom-64-classifier"))


def test_slerp_endpoints_are_bit_exact_and_norm_is_kept():
    a, b = latents_for_seed(3, 2, 64)
    b = b * (np.linalg.norm(a) / np.linalg.norm(b))  # equal norms: |z| must stay constant
    assert np.array_equal(slerp(a, b, 0.0), a)
    assert np.array_equal(slerp(a, b, 1.0), b.astype(np.float32))
    omega = _arccos_deg(a, b)
    for t in np.linspace(0.05, 0.95, 7):
        s = slerp(a, b, t)
        assert s.dtype == np.float32
        assert np.linalg.norm(s) == pytest.approx(np.linalg.norm(a), rel=1e-6)
        assert _arccos_deg(a, s) == pytest.approx(t * omega, abs=1e-3)
        assert _arccos_deg(s, b) == pytest.approx((1 - t) * omega, abs=1e-3)
        # on the great circle: in the plane of a and b
        basis = np.stack([a, b], axis=1).astype(np.float64)
        coef, *_ = np.linalg.lstsq(basis, s.astype(np.float64), rcond=None)
        assert np.linalg.norm(basis @ coef - s) < 1e-5 * np.linalg.norm(s)


def test_slerp_interpolates_unequal_norms_linearly_and_refuses_opposites():
    a, b = latents_for_seed(4, 2, 32)
    b = 2.0 * b
    s = slerp(a, b, 0.25)
    assert np.linalg.norm(s) == pytest.approx(0.75 * np.linalg.norm(a)
                                              + 0.25 * np.linalg.norm(b), rel=1e-6)
    with pytest.raises(ValueError, match="opposite"):
        slerp(a, -a, 0.5)
    with pytest.raises(ValueError, match="zero vector"):
        slerp(a, np.zeros_like(a), 0.5)


def test_angle_between_matches_arccos_and_is_accurate_when_tiny():
    a, b = latents_for_seed(5, 2, 128)
    assert np.degrees(angle_between(a, b)) == pytest.approx(_arccos_deg(a, b), abs=1e-9)
    unit = a / np.linalg.norm(a)
    other = np.zeros_like(unit, dtype=np.float64)
    other[0] = -unit[1]
    other[1] = unit[0]
    other /= np.linalg.norm(other)
    tiny = 1e-7
    near = np.cos(tiny) * unit + np.sin(tiny) * other  # arccos would return 0 or noise here
    assert angle_between(unit, near) == pytest.approx(tiny, rel=1e-6)


@pytest.mark.parametrize("size", [8, 32, 128])
def test_angle_percentile_matches_monte_carlo_draws(size):
    rng = np.random.default_rng(0)
    z0 = rng.standard_normal(size)
    draws = rng.standard_normal((40000, size))
    angles = np.degrees(np.arccos(np.clip(
        draws @ z0 / np.linalg.norm(draws, axis=1) / np.linalg.norm(z0), -1, 1)))
    for q in (1, 10, 50, 90, 99):
        angle = np.percentile(angles, q)
        assert angle_percentile(angle, size) == pytest.approx(q, abs=0.6)
    assert angle_percentile(0.0, size) == 0.0
    assert angle_percentile(180.0, size) == pytest.approx(100.0)


def test_rotate_towards_keeps_norm_and_turns_by_the_angle():
    z = latents_for_seed(6, 1, 64)[0]
    u = tangent_direction(z, latents_for_seed(7, 1, 64)[0])
    assert abs(u @ z) < 1e-9 * np.linalg.norm(z)
    assert np.array_equal(rotate_towards(z, u, 0.0), z)
    for degrees in (-30.0, 5.0, 90.0):
        moved = rotate_towards(z, u, np.radians(degrees))
        assert np.linalg.norm(moved) == pytest.approx(np.linalg.norm(z), rel=1e-6)
        assert _arccos_deg(z, moved) == pytest.approx(abs(degrees), abs=1e-3)
    with pytest.raises(ValueError, match="gradient is zero"):
        tangent_direction(z, 3.0 * z)  # radial only: nothing tangent


def test_interpolation_endpoints_equal_plain_renders_and_probabilities_are_direct(
        demo, demo_classifier):
    a, b = latents_for_seed(11, 2, demo.config.latent_size)
    path = interpolation_path(demo, a, b, 5, demo_classifier)
    renderer = Renderer(demo)
    first = renderer.render(a[None])[0, 0]
    last = renderer.render(b[None])[0, 0]
    assert torch.equal(torch.from_numpy(path.frames[0].image), first)
    assert torch.equal(torch.from_numpy(path.frames[-1].image), last)
    assert [f.position for f in path.frames] == [0.0, 0.25, 0.5, 0.75, 1.0]
    total = _arccos_deg(a, b)
    for frame in path.frames:
        assert frame.angle_deg == pytest.approx(frame.position * total, abs=1e-3)
        direct = demo_classifier.classifier.probabilities(
            renderer.render(frame.z[None])).numpy()[0]
        np.testing.assert_allclose(frame.probabilities, direct, rtol=0, atol=1e-6)
    assert path.labels == demo_classifier.labels
    assert path.method["total_angle_deg"] == pytest.approx(total, abs=1e-6)
    # the middle image differs from both ends: the path moves
    assert np.abs(path.frames[2].image - path.frames[0].image).mean() > 1e-3


def test_interpolation_without_classifier_has_no_probabilities(demo):
    a, b = latents_for_seed(12, 2, demo.config.latent_size)
    path = interpolation_path(demo, a, b, 3)
    assert path.probabilities is None and path.labels == ()
    with pytest.raises(ValueError, match="no probabilities"):
        path.probability("Effusion")
    with pytest.raises(ValueError, match="at least 2"):
        interpolation_path(demo, a, b, 1)
    with pytest.raises(ValueError, match="values for this model"):
        interpolation_path(demo, a[:10], b[:10], 3)


def test_truncated_interpolation_renders_every_frame_at_psi(demo, demo_classifier):
    """psi 0.5: the ends are the truncated renders of the two latents bit for bit. psi 0:
    every latent is the mean image, so every frame is one image and every frame's
    probabilities are the same (an independent check that the frames go through the
    truncated generator: at psi 1 the ends differ)."""
    from cxrgan_desktop.engine.interpolation import render_frames

    a, b = latents_for_seed(13, 2, demo.config.latent_size)
    path = interpolation_path(demo, a, b, 4, demo_classifier, truncation=0.5)
    assert path.truncation == 0.5
    truncated = Renderer(demo, truncation=0.5)
    assert torch.equal(torch.from_numpy(path.frames[0].image), truncated.render(a[None])[0, 0])
    assert torch.equal(torch.from_numpy(path.frames[-1].image), truncated.render(b[None])[0, 0])
    assert not torch.equal(torch.from_numpy(path.frames[0].image),
                           Renderer(demo).render(a[None])[0, 0])
    mean_path = interpolation_path(demo, a, b, 5, demo_classifier, truncation=0.0)
    first = mean_path.frames[0]
    for frame in mean_path.frames[1:]:
        assert np.array_equal(frame.image, first.image)
        assert np.array_equal(frame.probabilities, first.probabilities)
    plain = interpolation_path(demo, a, b, 2, demo_classifier)
    assert plain.truncation == 1.0
    assert not np.array_equal(plain.frames[0].probabilities, plain.frames[1].probabilities)
    # frames rendered by a renderer at another psi than asked for are refused
    with pytest.raises(ValueError, match="psi 0.5.*psi 1"):
        render_frames(demo, [a], None, truncated, a, [0.0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        interpolation_path(demo, a, b, 3, truncation=-0.1)
