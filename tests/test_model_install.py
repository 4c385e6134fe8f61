"""Installing generators: a known model downloaded from its archive (served on loopback, as
the paper's zip is published), a file the user has, and the errors that leave nothing."""

from __future__ import annotations

import hashlib
import re

import pytest

from cxrgan_desktop.cli import main
from cxrgan_desktop.core import paths
from cxrgan_desktop.engine.checkpoints import load_generator
from cxrgan_desktop.store import zoo

CARD = "segal2020-pggan-cxr14"


def _downloads_left() -> list[str]:
    folder = paths.cache_dir() / "downloads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_known_model_downloads_and_installs_with_its_hashes(archive_server, paper_file, capsys):
    url, archives = archive_server
    assert main(["import-model", "--download", CARD, "--url", f"{url}/good.zip"]) == 0
    printed = capsys.readouterr().out
    assert hashlib.sha256(paper_file).hexdigest() in printed
    installed = {m.name: m for m in zoo.installed_models()}[CARD]
    assert installed.card is not None and installed.card.licence == "MIT"
    model = load_generator(installed.path)
    assert model.resolution == 32
    assert model.provenance["download_sha256"] == hashlib.sha256(
        archives["/good.zip"]).hexdigest()
    assert model.provenance["downloaded_from"] == f"{url}/good.zip"
    assert model.provenance["imported_sha256"] == hashlib.sha256(paper_file).hexdigest()
    assert _downloads_left() == []  # the archive and the extracted file are gone
    assert zoo.resolve_model(CARD) == installed.path
    assert main(["import-model", "--download", CARD, "--url", f"{url}/good.zip"]) == 2
    assert "already installed" in capsys.readouterr().err


@pytest.mark.parametrize(("path", "message"), [
    ("/other.zip", "holds no Final_Full_Model.pth"),
    ("/broken.zip", "broken.zip|not"),  # not a zip: handed to the loader, which refuses it
    ("/missing.zip", "missing.zip failed: Not Found")])
def test_a_bad_download_installs_nothing(archive_server, path, message, capsys):
    url, _ = archive_server
    assert main(["import-model", "--download", CARD, "--url", f"{url}{path}"]) == 2
    assert CARD not in {m.name for m in zoo.installed_models()}
    assert re.search(message, capsys.readouterr().err)
    assert _downloads_left() == []


def test_a_local_file_installs_and_bad_requests_are_refused(tmp_path, paper_file, capsys):
    source = tmp_path / "Final_Full_Model.pth"
    source.write_bytes(paper_file)
    assert main(["import-model", str(source), "--name", "mine"]) == 0
    assert (paths.models_dir() / "mine.safetensors").is_file()
    assert main(["import-model"]) == 2
    assert main(["import-model", str(source), "--download", CARD]) == 2
    assert main(["import-model", "--download", "no-such-model"]) == 2
    assert "no known model" in capsys.readouterr().err
