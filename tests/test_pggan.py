import math

import pytest
import torch
import torch.nn.functional as F

from cxrgan_desktop.engine.layers import EqualizedConv2d, minibatch_stddev, pixel_norm
from cxrgan_desktop.engine.pggan import Discriminator, Generator, PGGANConfig

SMALL = PGGANConfig(latent_size=16, channels=(32, 32, 16, 8), image_channels=1)


def test_generator_and_discriminator_shapes_at_every_depth():
    G, D = Generator(SMALL, depth=0), Discriminator(SMALL, depth=0)
    z = torch.randn(3, 16)
    for depth in range(SMALL.max_depth + 1):
        G.set_depth(depth)
        D.set_depth(depth)
        image = G(z)
        assert image.shape == (3, 1, 4 * 2**depth, 4 * 2**depth)
        assert D(image).shape == (3, 1)


@pytest.mark.parametrize("channels", [(8,), (16, 8), (8, 8, 8, 8, 8, 4)])
def test_any_schedule_and_three_output_channels(channels):
    config = PGGANConfig(latent_size=7, channels=channels, image_channels=3)
    G = Generator(config)
    assert G(torch.randn(2, 7)).shape == (2, 3, config.max_resolution, config.max_resolution)
    assert Discriminator(config)(torch.randn(2, 3, config.max_resolution,
                                             config.max_resolution)).shape == (2, 1)


def test_paper_schedule_reaches_1024():
    config = PGGANConfig()
    assert config.max_resolution == 1024 and config.max_depth == 8


def test_grow_starts_fade_and_endpoints_match_old_and_new_paths():
    G = Generator(SMALL, depth=1)
    z = torch.randn(2, 16)
    with torch.no_grad():
        old = G(z)
        G.grow()
        assert G.current_depth == 2 and float(G.alpha) == 0.0 and G.fading
        start = G(z)
        G.set_alpha(1.0)
        end = G(z)
        G.set_alpha(0.25)
        mid = G(z)
    torch.testing.assert_close(start, F.interpolate(old, scale_factor=2.0, mode="nearest"))
    torch.testing.assert_close(mid, 0.75 * start + 0.25 * end, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(start, end)


def test_discriminator_fade_mixes_pooled_old_path():
    D = Discriminator(SMALL, depth=1)
    image = torch.randn(4, 1, 16, 16)
    D.grow()
    D.set_alpha(0.0)
    with torch.no_grad():
        at_zero = D(image)
        D.set_depth(1)
        old = D(F.avg_pool2d(image, 2))
    torch.testing.assert_close(at_zero, old, atol=1e-5, rtol=1e-5)


def test_growth_api_bounds():
    G = Generator(SMALL)
    with pytest.raises(ValueError, match="maximum resolution"):
        G.grow()
    with pytest.raises(ValueError, match="alpha"):
        G.set_alpha(1.5)
    with pytest.raises(ValueError, match="depth"):
        G.set_depth(9)
    with pytest.raises(ValueError, match="latents"):
        G(torch.randn(2, 5))


def test_growth_state_travels_in_state_dict():
    G = Generator(SMALL, depth=2)
    G.set_alpha(0.4)
    H = Generator(SMALL, depth=0)
    H.load_state_dict(G.state_dict())
    assert H.current_depth == 2 and math.isclose(float(H.alpha), 0.4, rel_tol=1e-6)


def test_equalized_conv_scales_weight_by_he_constant():
    conv = EqualizedConv2d(4, 2, 3)
    x = torch.randn(1, 4, 5, 5)
    expected = F.conv2d(x, conv.weight * math.sqrt(2 / 36), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)
    before = conv(x).detach()
    conv.fold_gain()
    torch.testing.assert_close(conv(x).detach(), before)


def test_pixel_norm_gives_unit_mean_square():
    x = torch.randn(2, 8, 3, 3) * 5
    assert torch.allclose(pixel_norm(x).square().mean(dim=1), torch.ones(2, 3, 3), atol=1e-5)


def test_minibatch_stddev_whole_batch_and_groups():
    x = torch.randn(4, 3, 2, 2)
    out = minibatch_stddev(x)
    expected = x.std(dim=0, unbiased=False).mean()
    assert out.shape == (4, 4, 2, 2)
    torch.testing.assert_close(out[:, 3], torch.full((4, 2, 2), float(expected)),
                               atol=1e-4, rtol=1e-4)
    grouped = minibatch_stddev(x, group_size=2)
    # groups interleave: samples 0 and 2 form one group, 1 and 3 the other
    g0 = torch.stack([x[0], x[2]]).std(dim=0, unbiased=False).mean()
    torch.testing.assert_close(grouped[0, 3, 0, 0], g0, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="divisible"):
        minibatch_stddev(torch.randn(3, 2, 2, 2), group_size=2)


def test_config_json_round_trip_and_validation():
    assert PGGANConfig.from_json(SMALL.to_json()) == SMALL
    with pytest.raises(ValueError):
        PGGANConfig(image_channels=2)
    with pytest.raises(ValueError):
        PGGANConfig(channels=tuple([8] * 10))
    with pytest.raises(ValueError, match="unknown"):
        PGGANConfig.from_json('{"latent_size": 4, "colour": 1}')
