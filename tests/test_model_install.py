"""Installing generators: a known model downloaded from its archive (served on loopback, as
the paper's zip is published), a file the user has, and the errors that leave nothing."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import threading
import zipfile

import pytest
import torch

from cxrgan_desktop import paths, zoo
from cxrgan_desktop.cli import main
from cxrgan_desktop.engine.checkpoints import load_generator
from tests.reference.segal_layout import random_segal_generator_state

CARD = "segal2020-pggan-cxr14"


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def paper_file() -> bytes:
    """A generator in the paper's layout (small widths), as torch.save writes it."""
    buffer = io.BytesIO()
    torch.save(random_segal_generator_state((32, 32, 16, 8), 16, seed=5), buffer)
    return buffer.getvalue()


@pytest.fixture
def server(paper_file):
    archives = {"/good.zip": _zip({"00020_PGGAN_CHEST_XRAY/Final_Full_Model.pth": paper_file,
                                   "00020_PGGAN_CHEST_XRAY/__init__.py": b"# medigan glue\n"}),
                "/other.zip": _zip({"README.txt": b"nothing here"}),
                "/broken.zip": b"PK\x03\x04 not really a zip"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = archives.get(self.path.split("?")[0])
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", archives
    httpd.shutdown()
    httpd.server_close()


def _downloads_left() -> list[str]:
    folder = paths.cache_dir() / "downloads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_known_model_downloads_and_installs_with_its_hashes(server, paper_file, capsys):
    url, archives = server
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
def test_a_bad_download_installs_nothing(server, path, message, capsys):
    url, _ = server
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
