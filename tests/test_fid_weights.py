"""Finding, downloading (from a loopback HTTP server) and verifying the Inception weights."""

from __future__ import annotations

import hashlib
import http.server
import threading

import pytest

from cxrgan_desktop.metrics import inception_weights as iw

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB stands in for the 91 MB file


@pytest.fixture
def spec(monkeypatch):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    spec = iw.WeightsSpec(file_name=f"pt_test-{digest[:8]}.pth", url="http://127.0.0.1:9/x",
                          sha256_prefix=digest[:8], description="the test weights")
    monkeypatch.setattr(iw, "STANDARD", spec)
    return spec


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAYLOAD
        if self.path == "/corrupt.pth":
            body = PAYLOAD[:1000] + b"\xff" + PAYLOAD[1001:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if self.path == "/interrupted.pth":
            body = PAYLOAD[: len(PAYLOAD) // 3]  # then the connection closes early
        if self.path == "/missing.pth":
            return
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _cache_listing() -> list[str]:
    folder = iw.weights_cache_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_verifies_and_installs_atomically(spec, server):
    seen = []
    path = iw.download_weights(url=f"{server}/good.pth",
                               progress=lambda f, m="": seen.append(f))
    assert path == iw.cached_path() and path.read_bytes() == PAYLOAD
    assert _cache_listing() == [spec.file_name]  # no temporary file left beside it
    assert seen[-1] == 1.0 and 0 < seen[0] < 1
    assert iw.find_weights() == path


def test_corrupted_download_installs_nothing(spec, server):
    with pytest.raises(iw.WeightsError, match=f"expected {spec.sha256_prefix}"):
        iw.download_weights(url=f"{server}/corrupt.pth")
    assert _cache_listing() == []


def test_interrupted_download_installs_nothing(spec, server):
    with pytest.raises(iw.WeightsMissing, match="interrupted|failed"):
        iw.download_weights(url=f"{server}/interrupted.pth", timeout=5)
    assert _cache_listing() == []


def test_unreachable_server_names_the_url_and_the_file(spec):
    with pytest.raises(iw.WeightsMissing) as caught:
        iw.download_weights(url="http://127.0.0.1:9/nothing-listens-here.pth", timeout=2)
    message = str(caught.value)
    assert "127.0.0.1:9" in message and spec.file_name in message
    assert "fid-weights --install" in message
    assert _cache_listing() == []


def test_cancelled_download_installs_nothing(spec, server):
    from cxrgan_desktop.core.jobs import Cancelled

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        iw.download_weights(url=f"{server}/good.pth", cancel=cancel)
    assert _cache_listing() == []


def test_find_prefers_the_user_file_then_the_cache(spec, tmp_path):
    assert iw.find_weights() is None
    with pytest.raises(iw.WeightsMissing, match="Looked in"):
        iw.require_weights()
    user = tmp_path / "downloads"
    user.mkdir()
    (user / spec.file_name).write_bytes(PAYLOAD)
    assert iw.find_weights(user) == user / spec.file_name  # a folder holding the file
    assert iw.find_weights(user / spec.file_name) == user / spec.file_name
    installed = iw.install_weights(user / spec.file_name)
    assert iw.find_weights() == installed == iw.cached_path()
    assert iw.find_weights(tmp_path / "gone.pth") == installed


def test_a_file_with_the_wrong_hash_is_refused(spec, tmp_path):
    wrong = tmp_path / spec.file_name
    wrong.write_bytes(PAYLOAD[::-1])
    with pytest.raises(iw.WeightsError, match="would not be comparable"):
        iw.install_weights(wrong)
    assert _cache_listing() == []


def test_load_rejects_other_networks_and_code(tmp_path, monkeypatch):
    import os

    import torch

    from cxrgan_desktop.core.fileio import sha256_file

    def spec_for(path):
        spec = iw.WeightsSpec(path.name, "http://127.0.0.1:9/", sha256_file(path)[:8], "test")
        monkeypatch.setattr(iw, "STANDARD", spec)

    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, other)
    spec_for(other)
    with pytest.raises(iw.WeightsError, match="not the FID Inception layout.*missing"):
        iw.load_inception(other)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"x": Exploit()}, evil)
    spec_for(evil)
    with pytest.raises(iw.WeightsError, match="refused"):
        iw.load_inception(evil)
