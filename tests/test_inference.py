import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrgan_desktop.engine.checkpoints import LoadedGenerator, OutputAdapter
from cxrgan_desktop.engine.inference import InferenceGenerator, fuse_upsample_into_conv
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.engine.render import Renderer, latents_for_seed


def test_fused_upsample_conv_identity():
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    w = torch.randn(4, 6, 3, 3, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    expected = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest"), w, b, padding=1)
    fused = F.conv_transpose2d(x, fuse_upsample_into_conv(w), b, stride=2, padding=1)
    torch.testing.assert_close(fused, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels,image_channels,depth", [
    ((32, 32, 16, 8), 1, 3), ((32, 32, 16, 8), 3, 2), ((16,), 1, 0), ((24, 12, 12), 3, 2)])
def test_fast_generator_matches_training_module(channels, image_channels, depth):
    torch.manual_seed(0)
    G = Generator(PGGANConfig(latent_size=12, channels=channels, image_channels=image_channels),
                  depth=depth).eval()
    for p in G.parameters():  # non-zero biases, so bias handling is exercised
        p.data.add_(0.1 * torch.randn_like(p))
    z = torch.randn(3, 12)
    with torch.no_grad():
        expected = G(z)
    torch.testing.assert_close(InferenceGenerator(G)(z), expected, atol=2e-5, rtol=1e-4)


def test_fast_generator_refuses_fade_and_renderer_falls_back():
    config = PGGANConfig(latent_size=8, channels=(16, 8, 8))
    G = Generator(config, depth=1)
    G.grow()
    G.set_alpha(0.5)
    with pytest.raises(ValueError, match="fade"):
        InferenceGenerator(G)
    model = LoadedGenerator(G, OutputAdapter(1, "signed"), path=None, sha256="0", name="m",
                            source_format="native")
    images = Renderer(model).render(np.zeros((2, 8), np.float32))
    with torch.no_grad():
        expected = ((G(torch.zeros(2, 8)) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(images, expected)


def test_latents_depend_only_on_seed_and_index():
    full = latents_for_seed(7, 10, 16)
    assert full.dtype == np.float32 and full.shape == (10, 16)
    np.testing.assert_array_equal(latents_for_seed(7, 3, 16), full[:3])
    np.testing.assert_array_equal(latents_for_seed(7, 4, 16, start=6), full[6:])
    assert not np.array_equal(latents_for_seed(8, 3, 16), full[:3])


def test_half_precision_error_is_small():
    """float16 is meant for CUDA; its arithmetic can be checked here on the CPU."""
    torch.manual_seed(1)
    G = Generator(PGGANConfig(latent_size=32, channels=(64, 64, 32, 16, 8), image_channels=3))
    model = LoadedGenerator(G, OutputAdapter(3, "signed"), path=None, sha256="0", name="m",
                            source_format="native")
    z = latents_for_seed(0, 4, 32)
    full = Renderer(model, precision="float32").render(z)
    half = Renderer(model, precision="float16").render(z)
    difference = (full - half).abs()
    # in units of the [0, 1] image; 0 would mean no half-precision arithmetic ran at all.
    # Measured: max 0.0093, mean 0.00035 (about a tenth of an 8-bit grey level)
    assert 0 < difference.max().item() < 0.02
    assert difference.mean().item() < 0.001
    with pytest.raises(ValueError, match="precision"):
        Renderer(model, precision="int8")
