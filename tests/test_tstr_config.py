"""The TSTR experiment file written by ``write_config`` (tomli-w for TOML) read back with the
standard library's tomllib and json: every field type the config has (paths inside and
outside the file's folder, awkward path characters, lists of strings and floats, floats in
exponent form, ints, a false boolean) comes back as written, and ``load_config`` rebuilds
an equal config."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from cxrgan_desktop.engine.classifier.training import ClassifierTrainConfig
from cxrgan_desktop.engine.tstr.config import TSTRConfig, load_config, write_config

LABELS = ("Effusion", "Cardiomegaly", "Pneumothorax")


def _config(tmp_path: Path, elsewhere: Path) -> TSTRConfig:
    odd = tmp_path / 'real scans "2024" \\ é#[x]'  # spaces, quotes, a backslash, non-ASCII
    recipe = ClassifierTrainConfig(architecture="densenet-small", input_size=32, labels=LABELS,
                                   epochs=3, batch_size=8, lr=3e-4, weight_decay=1e-05,
                                   val_fraction=0.15, seed=11, augment=False)
    return TSTRConfig(real_images=odd, real_labels=odd / "Data_Entry.csv",
                      synthetic_images=elsewhere / "archive",
                      synthetic_labels=elsewhere / "archive" / "Data_Entry_lco.csv",
                      labels=LABELS, arms=("real", "synthetic", "scarce"), mix_ratio=0.75,
                      scarce_fractions=(0.1, 0.25, 1 / 3), test_fraction=0.3, seed=7,
                      bootstrap=250, classifier=recipe)


def _expected(tmp_path: Path, elsewhere: Path) -> dict:
    """What the file must hold, written out by hand: paths below the file's folder relative
    to it, others absolute; the recipe without its name and labels (the experiment's)."""
    odd = 'real scans "2024" \\ é#[x]'
    return {"real_images": odd, "real_labels": f"{odd}/Data_Entry.csv",
            "synthetic_images": str((elsewhere / "archive").resolve()),
            "synthetic_labels": str((elsewhere / "archive" / "Data_Entry_lco.csv").resolve()),
            "labels": list(LABELS), "arms": ["real", "synthetic", "scarce"], "mix_ratio": 0.75,
            "scarce_fractions": [0.1, 0.25, 1 / 3], "test_fraction": 0.3, "seed": 7,
            "bootstrap": 250,
            "classifier": {"architecture": "densenet-small", "input_size": 32, "epochs": 3,
                           "batch_size": 8, "lr": 3e-4, "weight_decay": 1e-05,
                           "val_fraction": 0.15, "seed": 11, "augment": False}}


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_every_field_reads_back_as_written(tmp_path, suffix):
    folder, elsewhere = tmp_path / "experiments", tmp_path / "elsewhere"
    folder.mkdir()
    config = _config(folder, elsewhere)
    written = write_config(config, folder / f"experiment{suffix}")
    text = written.read_text(encoding="utf-8")
    data = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    expected = _expected(folder, elsewhere)
    assert data == expected
    # == alone would let 1 stand for true and 3.0 for 3: the types must survive too
    assert {k: type(v) for k, v in data.items()} == {k: type(v) for k, v in expected.items()}
    assert {k: type(v) for k, v in data["classifier"].items()} == \
        {k: type(v) for k, v in expected["classifier"].items()}
    assert load_config(written) == config


def test_the_toml_file_starts_with_its_comment(tmp_path):
    written = write_config(_config(tmp_path, tmp_path / "elsewhere"), tmp_path / "e.toml")
    assert written.read_text(encoding="utf-8").startswith(
        "# cxrgan tstr experiment (written by cxrgan-desktop)\n")
