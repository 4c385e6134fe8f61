"""The bundled demo model: a fresh install, offline, generates from it and runs LCO with its
classifier, without a download and without naming either; both load through the same safe
loaders as any other file, ship in the package, and carry cards with their figures."""

from __future__ import annotations

import json
import socket
import urllib.request

import numpy as np
import pytest
import torch

from cxrgan_desktop import cli
from cxrgan_desktop.core import paths, shipped
from cxrgan_desktop.engine.classifier.installed import (
    DEMO_CLASSIFIER,
    bundled_classifiers,
    default_classifier,
    installed_classifiers,
)
from cxrgan_desktop.store import zoo

GENERATOR_FILE = shipped.bundled_models_dir() / f"{zoo.DEMO_MODEL}.safetensors"
CLASSIFIER_FILE = shipped.bundled_models_dir() / "classifiers" / f"{DEMO_CLASSIFIER}.safetensors"


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to reach the network fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_the_demo_ships_small_with_cards():
    assert GENERATOR_FILE.is_file() and CLASSIFIER_FILE.is_file()
    for file in (GENERATOR_FILE, CLASSIFIER_FILE):
        assert file.stat().st_size < 8e6, file  # "a few MB"
    cards = {card.id: card for card in zoo.known_cards()}
    for name, kind in ((zoo.DEMO_MODEL, "generator"), (DEMO_CLASSIFIER, "classifier")):
        card = cards[name]
        assert card.kind == kind and "not clinical" in card.limitations
        assert card.training["commands"] and card.training["wall_time_s"] > 0
        assert card.evaluation
    assert set(cards[DEMO_CLASSIFIER].evaluation["heldout_auroc"]) >= {"Cardiomegaly",
                                                                       "Effusion"}
    assert "features" in cards[zoo.DEMO_MODEL].evaluation["feature_frechet_distance"]


def test_bundled_models_are_the_fallback_and_never_removed(tmp_path):
    names = [m.name for m in zoo.installed_models()]
    assert names == [zoo.DEMO_MODEL] and not zoo.user_models()
    assert zoo.default_model() == GENERATOR_FILE
    assert zoo.installed_models()[0].bundled
    assert installed_classifiers() == bundled_classifiers() == [CLASSIFIER_FILE]
    assert default_classifier() == CLASSIFIER_FILE
    with pytest.raises(ValueError, match="not in your models folder"):
        zoo.remove_installed(GENERATOR_FILE)
    assert GENERATOR_FILE.exists()
    mine = paths.models_dir() / "mine.safetensors"  # a user's model comes first
    mine.parent.mkdir(parents=True)
    mine.write_bytes(GENERATOR_FILE.read_bytes())
    assert zoo.default_model() == mine
    assert [m.name for m in zoo.installed_models()] == ["mine", zoo.DEMO_MODEL]


def test_the_demo_generator_loads_safely_and_draws_finite_64px_phantoms():
    from cxrgan_desktop.engine.checkpoints import load_generator
    from cxrgan_desktop.engine.render import Renderer

    model = load_generator(GENERATOR_FILE)
    assert model.source_format.startswith("native") and model.resolution == 64
    assert not model.generator.fading
    images = Renderer(model).render(np.random.default_rng(0).standard_normal(
        (4, model.config.latent_size)).astype(np.float32))
    assert images.shape == (4, 1, 64, 64) and torch.isfinite(images).all()
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert float(images.std()) > 0.05  # a picture, not a flat field


def test_offline_generate_and_lco_without_naming_a_model(tmp_path, offline, capsys):
    out = tmp_path / "generated"
    assert cli.main(["generate", "--n", "2", "--out", str(out)]) == 0
    assert len(sorted(out.glob("img_*.png"))) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert zoo.DEMO_MODEL in json.dumps(manifest)
    archive = tmp_path / "lco"
    assert cli.main(["lco", "--labels", "Cardiomegaly", "--n", "1", "--steps", "3",
                     "--restarts", "0", "--out", str(archive)]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert zoo.DEMO_MODEL in err and DEMO_CLASSIFIER in err
    assert (archive / "manifest.json").is_file() and (archive / "Data_Entry_lco.csv").is_file()
