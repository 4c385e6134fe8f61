"""``cxrgan fid`` and ``cxrgan fid-weights`` on the random-weights network."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrgan_desktop.cli import main
from cxrgan_desktop.metrics.fid_history import load_history


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    from cxrgan_desktop.tasks.phantom import write_phantoms

    root = tmp_path_factory.mktemp("cli_sets")
    return (write_phantoms(root / "real", n=5, size=32, seed=1),
            write_phantoms(root / "fake", n=4, size=32, seed=2))


def test_fid_prints_the_score_the_settings_and_keeps_history(folders, fid_weights, tmp_path,
                                                             capsys):
    real, fake = folders
    out_json, stats = tmp_path / "result.json", tmp_path / "real.npz"
    code = main(["fid", str(real), str(fake), "--inception-weights", str(fid_weights),
                 "--offline", "--device", "cpu", "--kid-subsets", "3", "--json", str(out_json),
                 "--save-stats", str(stats), "--with-features"])
    printed = capsys.readouterr().out
    assert code == 0
    record = json.loads(out_json.read_text())
    assert f"FID   {record['fid']:.4f}" in printed
    assert "KID " in printed and "3 subsets of 4" in printed
    assert "N=5" in printed and "N=4" in printed
    assert "resize antialias to 299 px" in printed
    assert "N = 4 < 2048" in printed
    assert load_history()[-1]["fid"] == record["fid"]
    with np.load(stats) as data:
        assert data["mu"].shape == (2048,) and int(data["n"]) == 5
        assert data["features"].shape == (5, 2048)

    code = main(["fid", str(stats), str(fake), "--inception-weights", str(fid_weights),
                 "--offline", "--kid-subsets", "3", "--no-history"])
    assert code == 0
    assert f"FID   {record['fid']:.4f}" in capsys.readouterr().out
    assert len(load_history()) == 1


def test_one_side_with_save_stats(folders, fid_weights, tmp_path, capsys):
    real, _ = folders
    stats = tmp_path / "only.npz"
    assert main(["fid", str(real), "--save-stats", str(stats), "--inception-weights",
                 str(fid_weights), "--offline"]) == 0
    assert "saved statistics" in capsys.readouterr().out and stats.is_file()
    assert main(["fid", str(real)]) == 2
    assert "--save-stats" in capsys.readouterr().err


def test_missing_weights_offline_names_the_url_and_the_fix(folders, capsys):
    real, fake = folders
    assert main(["fid", str(real), str(fake), "--offline"]) == 2
    err = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in err
    assert "https://github.com/mseitzer/pytorch-fid/releases" in err
    assert "fid-weights --install" in err


def test_fid_weights_install_and_status(fid_weights, capsys):
    assert main(["fid-weights"]) == 1
    assert "not on this machine" in capsys.readouterr().out
    assert main(["fid-weights", "--install", str(fid_weights)]) == 0
    assert "installed" in capsys.readouterr().out
    assert main(["fid-weights"]) == 0
    assert "(checked)" in capsys.readouterr().out


def test_bad_sides_are_user_errors(folders, fid_weights, tmp_path, capsys):
    real, _ = folders
    assert main(["fid", str(real), str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err  # before torch loads
    assert main(["fid", str(real), "model:no-such-model", "--n", "4", "--offline",
                 "--inception-weights", str(fid_weights)]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_the_parser_builds_without_torch():
    """``cxrgan --help`` stays instant: building every subcommand's parser loads no torch."""
    import subprocess
    import sys

    code = ("import sys\nfrom cxrgan_desktop import cli\ncli.build_parser()\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


def test_architecture_names_match_the_networks():
    from cxrgan_desktop.engine.classifier.densenet import ARCHITECTURES
    from cxrgan_desktop.engine.classifier.installed import ARCHITECTURE_NAMES

    assert set(ARCHITECTURE_NAMES) == set(ARCHITECTURES)


def test_a_missing_weights_file_is_an_error_not_a_download(folders, capsys):
    real, fake = folders
    assert main(["fid", str(real), str(fake), "--inception-weights", "/nowhere/x.pth"]) == 2
    assert "no such file" in capsys.readouterr().err
