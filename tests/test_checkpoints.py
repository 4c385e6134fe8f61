import argparse
import os
import pickle

import pytest
import torch

from cxrgan_desktop.engine.checkpoints import (
    CheckpointError,
    OutputAdapter,
    UnsafeCheckpointError,
    load_generator,
    save_generator,
)
from cxrgan_desktop.engine.pggan import Discriminator, Generator, PGGANConfig
from tests.reference.segal_layout import (
    PAPER_CHANNELS,
    ReferenceGenerator,
    random_segal_discriminator_state,
    random_segal_generator_state,
    reference_discriminator,
    reference_image,
)

CHANNELS = (32, 32, 16, 8)
LATENT = 16


def _prefixed(state, prefix):
    return {prefix + k: v for k, v in state.items()}


def _render(loaded, z):
    with torch.no_grad():
        return loaded.adapter.apply(loaded.generator(z))


def _reference(state, z):
    with torch.no_grad():
        return reference_image(ReferenceGenerator(state)(z))


@pytest.fixture
def g_state():
    return random_segal_generator_state(CHANNELS, LATENT, seed=3)


def test_generator_only_file_matches_reference_forward(tmp_path, g_state):
    path = tmp_path / "gen.pth"
    torch.save(g_state, path)
    loaded = load_generator(path)
    assert loaded.config.channels == CHANNELS and loaded.config.latent_size == LATENT
    assert loaded.config.image_channels == 3 and loaded.resolution == 32
    assert "generator-only" in loaded.source_format
    z = torch.randn(4, LATENT)
    out = _render(loaded, z)
    assert out.shape == (4, 1, 32, 32)
    torch.testing.assert_close(out, _reference(g_state, z), atol=2e-5, rtol=1e-4)
    # the raw network output too, before clamping hides differences
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(z), ReferenceGenerator(g_state)(z),
                                   atol=5e-5, rtol=1e-4)


def test_full_paper_architecture_at_1024(tmp_path):
    state = random_segal_generator_state(PAPER_CHANNELS, 512, seed=5)
    path = tmp_path / "Final_Full_Model.pth"
    torch.save({"state_dict": state, "settings": {"channel_depth": list(PAPER_CHANNELS)}}, path)
    loaded = load_generator(path)
    assert loaded.config.channels == PAPER_CHANNELS and loaded.resolution == 1024
    z = torch.randn(1, 512)
    torch.testing.assert_close(_render(loaded, z), _reference(state, z), atol=1e-4, rtol=1e-3)


def test_training_state_prefers_ema_generator_and_keeps_discriminator(tmp_path, g_state):
    live = random_segal_generator_state(CHANNELS, LATENT, seed=11)
    d_state = random_segal_discriminator_state(CHANNELS, seed=12)
    full = {**_prefixed(live, "generator."), **_prefixed(g_state, "gen_shadow."),
            **_prefixed(d_state, "discriminator."), "img_size": torch.tensor(32),
            "scale": torch.tensor(3), "alpha": torch.tensor(0.0),
            "fixed_z": torch.randn(8, LATENT)}
    path = tmp_path / "train.ckpt"
    torch.save({"state_dict": full, "epoch": 3}, path)
    loaded = load_generator(path)
    assert "gen_shadow" in loaded.source_format
    z = torch.randn(2, LATENT)
    torch.testing.assert_close(_render(loaded, z), _reference(g_state, z), atol=2e-5, rtol=1e-4)

    D = Discriminator(loaded.config)
    D.load_state_dict(loaded.discriminator_state, strict=False)
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(D(images), reference_discriminator(d_state, images),
                                   atol=1e-4, rtol=1e-4)


def test_training_state_without_ema_uses_generator(tmp_path, g_state):
    path = tmp_path / "direct.pth"
    torch.save(_prefixed(g_state, "generator."), path)
    loaded = load_generator(path)
    assert "generator" in loaded.source_format
    z = torch.randn(2, LATENT)
    torch.testing.assert_close(_render(loaded, z), _reference(g_state, z), atol=2e-5, rtol=1e-4)


def test_lightning_checkpoint_with_namespace_hyper_parameters(tmp_path, g_state):
    hparams = argparse.Namespace(name="CXR", z_dim=LATENT, batch_sizes=[64, 32], lr=0.001)
    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": _prefixed(g_state, "gen_shadow."), "hyper_parameters": hparams,
                "pytorch-lightning_version": "0.7.6"}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # the case the restricted unpickler exists for
    loaded = load_generator(path)
    z = torch.randn(2, LATENT)
    torch.testing.assert_close(_render(loaded, z), _reference(g_state, z), atol=2e-5, rtol=1e-4)


def test_mid_fade_file_keeps_fade(tmp_path):
    state = random_segal_generator_state(CHANNELS, LATENT, seed=4, paper_alpha=0.3)
    path = tmp_path / "fading.pth"
    torch.save(state, path)
    loaded = load_generator(path)
    assert loaded.generator.fading
    assert abs(float(loaded.generator.alpha) - 0.7) < 1e-6  # paper 0.3 old-path weight


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["zip", "raw-pickle"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, g_state, container):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": g_state, "settings": _Payload(marker)}
    if container == "zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_generator(path)
    assert not marker.exists()


def test_other_architecture_names_keys_and_shapes(tmp_path, g_state):
    bad = dict(g_state)
    bad["toRGB.3.module.weight"] = torch.randn(3, 12, 1, 1)
    path = tmp_path / "other.pth"
    torch.save(bad, path)
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    text = str(info.value)
    assert "other.pth" in text and "to_image.3.weight" in text and "[3, 12, 1, 1]" in text


def test_unknown_keys_are_named(tmp_path, g_state):
    path = tmp_path / "extra.pth"
    torch.save({**g_state, "mapping.fc0.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(CheckpointError, match="mapping.fc0.weight"):
        load_generator(path)


def test_foreign_model_is_rejected_with_its_keys(tmp_path):
    path = tmp_path / "classifier.pth"
    torch.save({"features.conv0.weight": torch.zeros(4, 3, 7, 7)}, path)
    with pytest.raises(CheckpointError, match="features.conv0.weight"):
        load_generator(path)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"PK\x03\x04broken zip"])
def test_garbage_files_get_a_clear_error(tmp_path, content):
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_generator(path)


def test_missing_file():
    with pytest.raises(CheckpointError, match="no such file"):
        load_generator("/nonexistent/model.safetensors")


def test_native_round_trip_preserves_pixels_and_metadata(tmp_path):
    config = PGGANConfig(latent_size=LATENT, channels=CHANNELS, image_channels=1)
    G, D = Generator(config), Discriminator(config)
    adapter = OutputAdapter(channels=1, value_range="signed")
    path = save_generator(tmp_path / "m.safetensors", G, adapter, name="tiny",
                          provenance={"training_data": "phantom", "images_shown": 1234},
                          discriminator=D)
    loaded = load_generator(path)
    assert loaded.name == "tiny" and loaded.source_format == "native"
    assert loaded.adapter == adapter and loaded.config == config
    assert loaded.provenance["images_shown"] == 1234 and "code_version" in loaded.provenance
    assert set(loaded.discriminator_state) == set(D.state_dict()) - {"depth", "alpha"}
    z = torch.randn(3, LATENT)
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(z), G.eval()(z))


def test_imported_paper_model_saves_as_native_and_reloads_identically(tmp_path, g_state):
    torch.save(g_state, tmp_path / "paper.pth")
    imported = load_generator(tmp_path / "paper.pth")
    save_generator(tmp_path / "paper.safetensors", imported.generator, imported.adapter,
                   name="paper", provenance=imported.provenance)
    native = load_generator(tmp_path / "paper.safetensors")
    z = torch.randn(2, LATENT)
    torch.testing.assert_close(_render(native, z), _render(imported, z))
    assert native.provenance["imported_sha256"] == imported.sha256


def test_native_file_with_mismatched_tensors(tmp_path):
    config = PGGANConfig(latent_size=LATENT, channels=CHANNELS)
    path = save_generator(tmp_path / "m.safetensors", Generator(config), OutputAdapter(), "m")
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(path)
    tensors["G.blocks.1.conv1.weight"] = torch.zeros(16, 16, 5, 5)
    save_file(tensors, path, metadata=metadata)
    with pytest.raises(CheckpointError, match=r"blocks.1.conv1.weight.*\[16, 16, 5, 5\]"):
        load_generator(path)


def test_truncated_native_file(tmp_path):
    config = PGGANConfig(latent_size=LATENT, channels=CHANNELS)
    path = save_generator(tmp_path / "m.safetensors", Generator(config), OutputAdapter(), "m")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="m.safetensors"):
        load_generator(path)
