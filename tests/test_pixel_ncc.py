"""The audit's pixel space: inner products are Pearson correlations of the resized images
(scipy), invariant to window/level, with resizes checked against definitions in numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr

from cxrgan_desktop.metrics.pixel_ncc import (
    PIXEL_SPACE_IDENTITY,
    ncc_vectors,
    pixel_space_identity,
)


def structured_images(count: int, size: int, seed: int = 0) -> np.ndarray:
    """[count, size, size] float32 in [0, 1]: a smooth pattern plus noise, different per
    image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    out = np.empty((count, size, size), np.float32)
    for k in range(count):
        fx, fy = rng.uniform(2, 9, 2)
        smooth = 0.5 + 0.25 * np.sin(fx * x + k) * np.cos(fy * y)
        out[k] = np.clip(smooth + 0.05 * rng.standard_normal((size, size)), 0, 1)
    return out


def block_mean(images: np.ndarray, size: int) -> np.ndarray:
    """Area resize for a whole-number factor, as a definition: the mean of each block."""
    count, height, width = images.shape
    f, g = height // size, width // size
    return images.astype(np.float64).reshape(count, size, f, size, g).mean(axis=(2, 4))


def as_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None]


@pytest.mark.parametrize("height", [64, 96])
def test_inner_products_are_pearson_r_of_the_block_averaged_images(height):
    images = structured_images(4, height, seed=height)
    vectors = ncc_vectors(as_tensor(images), size=32)
    assert vectors.shape == (4, 1024) and vectors.dtype == np.float32
    small = block_mean(images, 32)
    for i in range(4):
        for j in range(4):
            r = pearsonr(small[i].ravel(), small[j].ravel()).statistic
            assert float(vectors[i] @ vectors[j]) == pytest.approx(r, abs=1e-5)
    centred = small.reshape(4, -1) - small.reshape(4, -1).mean(axis=1, keepdims=True)
    expected = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_linear_window_level_change_leaves_the_vector_unchanged():
    images = structured_images(3, 100, seed=1)  # 100 -> 32: overlapping area windows
    plain = ncc_vectors(as_tensor(images))
    windowed = ncc_vectors(as_tensor(0.5 * images + 0.2))
    np.testing.assert_allclose(windowed, plain, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(plain, axis=1), 1.0, atol=1e-6)


def test_inverted_image_correlates_minus_one():
    images = structured_images(2, 64, seed=2)
    vectors = ncc_vectors(as_tensor(np.concatenate([images, 1.0 - images])))
    for k in range(2):
        assert float(vectors[k] @ vectors[k + 2]) == pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize("value", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("height", [64, 100])
def test_constant_image_gives_the_zero_vector(value, height):
    images = np.full((1, height, height), value, np.float32)
    np.testing.assert_array_equal(ncc_vectors(as_tensor(images)), np.zeros((1, 1024)))


def test_enlarging_is_bilinear_with_half_pixel_centres():
    """16 -> 32 px: each output pixel sits a quarter pixel from its nearest input pixel, so
    it is 3/4 of that one and 1/4 of the next (edges clamped), per axis."""
    images = structured_images(2, 16, seed=3).astype(np.float64)

    def double(a: np.ndarray, axis: int) -> np.ndarray:
        a = np.moveaxis(a, axis, -1)
        before = np.concatenate([a[..., :1], a[..., :-1]], axis=-1)
        after = np.concatenate([a[..., 1:], a[..., -1:]], axis=-1)
        out = np.empty((*a.shape[:-1], 2 * a.shape[-1]))
        out[..., 0::2] = 0.25 * before + 0.75 * a
        out[..., 1::2] = 0.75 * a + 0.25 * after
        return np.moveaxis(out, -1, axis)

    big = double(double(images, 1), 2).reshape(2, -1)
    centred = big - big.mean(axis=1, keepdims=True)
    expected = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(ncc_vectors(as_tensor(images), size=32), expected, atol=1e-6)


def test_other_sizes_and_empty_batches():
    images = structured_images(2, 64, seed=4)
    assert ncc_vectors(as_tensor(images), size=16).shape == (2, 256)
    assert ncc_vectors(torch.zeros(0, 1, 64, 64)).shape == (0, 1024)


@pytest.mark.parametrize("shape", [(2, 64, 64), (2, 3, 64, 64)])
def test_wrong_shapes_are_refused(shape):
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        ncc_vectors(torch.zeros(shape))


def test_identity_names_everything_that_decides_the_vectors():
    identity = pixel_space_identity(32)
    assert identity["space"] == "pixels" and identity["method"] == "ncc"
    assert identity["size"] == 32 and "area" in identity["resize"]
    assert isinstance(identity["version"], int)
    json.dumps(identity)  # a cache key is hashed from its JSON
    assert pixel_space_identity(16) != identity
    assert PIXEL_SPACE_IDENTITY(32) == identity
