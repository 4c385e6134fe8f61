"""Downloads of known models (security review, issue 18 group 6): what an archive may unpack
to is capped, a decompression bomb is refused as "archive too large", and temporaries of
runs that were killed are removed by the next run. Archives are served on loopback."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile

import pytest

from cxrgan_desktop.cli import main
from cxrgan_desktop.core import paths
from cxrgan_desktop.core.download import (
    DownloadFailed,
    clear_stale_parts,
    temporary_beside,
    temporary_folder,
)
from cxrgan_desktop.store import zoo
from cxrgan_desktop.store.install import InstallError, _extract, fetch_known_model

CARD = "segal2020-pggan-cxr14"
MEMBER = "00020_PGGAN_CHEST_XRAY/Final_Full_Model.pth"


def _downloads() -> list[str]:
    folder = paths.cache_dir() / "downloads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _zip_of_zeros(megabytes: int, name: str = MEMBER) -> bytes:
    """A zip whose one member is ``megabytes`` MB of zero bytes (about 1000:1), streamed so
    the test never holds the uncompressed member."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open(name, "w") as member:
        block = bytes(1 << 20)
        for _ in range(megabytes):
            member.write(block)
    return buffer.getvalue()


def test_the_size_limit_of_the_papers_model_fits_its_architecture():
    card = {c.id: c for c in zoo.known_cards()}[CARD]
    generator, discriminator = zoo.pggan_parameter_count(512, card.architecture["channels"])
    assert (generator, discriminator) == (23_086_795, 25_444_737)  # the modules' counts
    limit = zoo.unpacked_size_limit(card)
    assert 3 * 4 * (generator + discriminator) < limit < 1.5e9  # G, EMA G, D fit; GBs do not


def test_a_decompression_bomb_is_refused_before_unpacking(archive_server, capsys):
    url, archives = archive_server
    archives["/bomb.zip"] = _zip_of_zeros(64)  # 64 MB in about 64 KB
    assert main(["import-model", "--download", CARD, "--url", f"{url}/bomb.zip"]) == 2
    err = capsys.readouterr().err
    assert "archive too large" in err and "legacy" not in err
    assert _downloads() == []
    assert CARD not in {m.name for m in zoo.installed_models()}


def test_an_archive_over_the_size_cap_is_refused(tmp_path):
    archive = tmp_path / "big.zip"
    archive.write_bytes(_zip_of_zeros(8))
    with pytest.raises(InstallError, match="archive too large: big.zip: .* unpacks to 8.4 MB"):
        _extract(archive, "Final_Full_Model.pth", None, max_bytes=4_000_000, max_ratio=1e6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.zip"]  # no .part, no member


def test_declared_sizes_that_lie_are_not_trusted(tmp_path):
    """The central directory says 1000 bytes; the member inflates to 8 MB."""
    data = bytearray(_zip_of_zeros(8))
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 1000)  # uncompressed size
    archive = tmp_path / "liar.zip"
    archive.write_bytes(bytes(data))
    with pytest.raises(InstallError, match="liar.zip"):
        _extract(archive, "Final_Full_Model.pth", None, max_bytes=4_000_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["liar.zip"]


def test_a_download_over_the_cap_is_refused(archive_server):
    url, archives = archive_server
    archives["/huge.zip"] = bytes(3_000_000)
    with pytest.raises(DownloadFailed, match="too large"):
        fetch_known_model(CARD, url=f"{url}/huge.zip", max_unpacked_bytes=2_000_000)
    assert _downloads() == []


def test_stale_parts_of_earlier_runs_are_removed_and_live_ones_kept(archive_server):
    url, _ = archive_server
    work = paths.cache_dir() / "downloads"
    work.mkdir(parents=True)
    (work / ".Final_Full_Model.pth.abc123.part").write_bytes(bytes(1000))
    (work / f".{CARD}.xyz.part").mkdir()
    (work / f".{CARD}.xyz.part" / "Final_Full_Model.pth").write_bytes(bytes(1000))
    (work / "keep-me.txt").write_text("not ours")
    with temporary_beside(work / "other.bin") as live:
        fetch_known_model(CARD, url=f"{url}/good.zip")
        assert _downloads() == sorted([live.name, "keep-me.txt"])
    assert _downloads() == ["keep-me.txt"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL; Windows uses the age rule")
def test_a_killed_unpack_leaves_nothing_a_later_run_keeps(tmp_path):
    """A real kill -9 in the middle of writing: the lock dies with the process."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from cxrgan_desktop.core.download import temporary_folder\n"
        "with temporary_folder(Path(sys.argv[1]), '.model.') as run:\n"
        "    (run / 'Final_Full_Model.pth').write_bytes(bytes(1 << 20))\n"
        "    print(run, flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].endswith(".part")
    with temporary_folder(tmp_path, ".live.") as live:
        removed = clear_stale_parts(tmp_path)
        assert [p.name for p in removed] == left
        assert [p.name for p in tmp_path.iterdir()] == [live.name]


@pytest.mark.parametrize(("reason", "words"), [
    (__import__("socket").gaierror(-2, "Name or service not known"),
     "cannot find the server example.invalid: this machine seems to be offline"),
    (TimeoutError("timed out"), "example.invalid did not answer in time"),
    (ConnectionRefusedError(111, "Connection refused"), "refused the connection"),
])
def test_network_failures_say_what_happened_and_what_to_do(reason, words):
    import urllib.error

    from cxrgan_desktop.core.download import network_reason

    text = network_reason(urllib.error.URLError(reason), "https://example.invalid/a.zip")
    assert words in text and "Errno" not in text
