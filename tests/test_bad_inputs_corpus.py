"""One bad file never stops a batch: pydicom's own test files plus a generated corpus of
damaged and hostile inputs, through every reader path (scan, convert CLI, training listing
and cache, FID folders).

The expected set of inputs is counted here with ``os.listdir``/``os.walk``, independently of
the code under test; every input must come out exactly once, read or skipped with a reason,
and no exception other than ``ImageReadError`` may leave ``read_image``.
"""

from __future__ import annotations

import csv
import errno
import os
import shutil
import stat
import struct
import subprocess
import sys
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from cxrgan_desktop.imaging import dicom_reader, raster_reader
from cxrgan_desktop.imaging.readers import (
    ImageReadError,
    LoadedImage,
    Skipped,
    display_path,
    read_image,
    scan_images,
)
from tests.dicom_data import real_dicom

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX file types needed"),
    # the corpus means to trip these: a claimed 10000 x 10000 PNG, NumberOfFrames "1A"
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore:Invalid value for VR IS:UserWarning"),
]

NON_UTF8 = b"bad_\xff\xfe.png"
LONG_NAME = "n" * 246 + ".png"  # 250 characters: allowed on disk


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose IHDR claims ``width`` x ``height`` with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def _dicom_variant(source: Path, target: Path, **attributes: str) -> None:
    ds = pydicom.dcmread(source)
    with warnings.catch_warnings():  # pydicom warns about the invalid values we want
        warnings.simplefilter("ignore")
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        ds.save_as(target)


# name -> text the skip reason must contain (None: must be read)
EXPECTED: dict[str, str | None] = {
    "good.png": None,
    "good.dcm": None,
    "tiny.png": None,
    LONG_NAME: None,
    os.fsdecode(NON_UTF8): None,
    "width0.dcm": None,  # an unusable window is ignored with a warning, see below
    "pipe.png": "not a regular file: a named pipe",
    "pipe_nosuffix": "not a regular file: a named pipe",
    "devnull.dcm": "not a regular file: a character device",
    "loop.png": "symbolic links",
    "broken.png": "broken symbolic link",
    "linked_dir": "a link to a folder",
    ".hidden.png": "hidden file",
    ".cache": "hidden folder",
    "empty.dcm": "the file is empty",
    "text.png": "not a PNG, JPEG, TIFF or BMP image",
    "postscript.png": "not a PNG, JPEG, TIFF or BMP image",
    "notes.txt": "not an image file",
    "bomb.png": "image too large: 60000 x 60000 pixels exceeds the limit",
    "bomb_mid.png": "image too large: 10000 x 10000 pixels exceeds the limit",
    "nan.tif": "not finite",
    "inf.tif": "not finite",
    "slope0.dcm": "RescaleSlope is 0",
    "slope_nan.dcm": "RescaleSlope is NaN, not a finite number",
    "bad_frames.dcm": "invalid DICOM attribute value",
    "colour.png": "colour",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A flat folder of good, damaged and hostile inputs (deterministic: seeded rng)."""
    root = tmp_path_factory.mktemp("corpus")
    folder = root / "in"
    folder.mkdir()
    rng = np.random.default_rng(18)
    noise = rng.integers(0, 65535, (48, 40)).astype(np.uint16)
    Image.fromarray(noise).save(folder / "good.png")
    png = (folder / "good.png").read_bytes()
    dicom_source = real_dicom("CT_small.dcm")
    shutil.copy(dicom_source, folder / "good.dcm")
    dcm = dicom_source.read_bytes()

    Image.fromarray(np.full((1, 1), 7, np.uint8)).save(folder / "tiny.png")
    (folder / LONG_NAME).write_bytes(png)
    (Path(os.fsdecode(os.fsencode(folder) + b"/" + NON_UTF8))).write_bytes(png)
    _dicom_variant(dicom_source, folder / "width0.dcm", WindowCenter="40", WindowWidth="0")
    os.mkfifo(folder / "pipe.png")
    os.mkfifo(folder / "pipe_nosuffix")
    os.symlink(os.devnull, folder / "devnull.dcm")
    os.symlink("loop.png", folder / "loop.png")
    os.symlink("nowhere.png", folder / "broken.png")
    outside = root / "outside"
    outside.mkdir()
    (outside / "x.png").write_bytes(png)
    os.symlink(outside, folder / "linked_dir")
    (folder / ".hidden.png").write_bytes(png)
    (folder / ".cache").mkdir()
    (folder / ".cache" / "inner.png").write_bytes(png)
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "text.png").write_text("a radiology report, not an image\n")
    (folder / "postscript.png").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\n")
    (folder / "notes.txt").write_text("not an image")
    (folder / "bomb.png").write_bytes(_png_claiming(60000, 60000))
    (folder / "bomb_mid.png").write_bytes(_png_claiming(10000, 10000))
    with_nan = rng.random((16, 16)).astype(np.float32)
    with_nan[3, 4] = np.nan
    Image.fromarray(with_nan).save(folder / "nan.tif")
    with_inf = rng.random((16, 16)).astype(np.float32)
    with_inf[0, 0] = np.inf
    Image.fromarray(with_inf).save(folder / "inf.tif")
    _dicom_variant(dicom_source, folder / "slope0.dcm", RescaleSlope="0")
    _dicom_variant(dicom_source, folder / "slope_nan.dcm", RescaleSlope="NaN")
    ds = pydicom.dcmread(dicom_source)  # NumberOfFrames "1A", as in pydicom's badVR.dcm
    ds.add_new(0x00280008, "IS", None)
    ds.save_as(folder / "bad_frames.dcm")
    bad_frames = (folder / "bad_frames.dcm").read_bytes()
    tag = struct.pack("<HH", 0x0028, 0x0008)
    at = bad_frames.index(tag)  # explicit VR LE: tag, "IS", 2-byte length, value
    patched = bad_frames[:at + 6] + struct.pack("<H", 2) + b"1A" + bad_frames[at + 8:]
    (folder / "bad_frames.dcm").write_bytes(patched)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(folder / "colour.png")

    locked = folder / "locked.png"
    locked.write_bytes(png)
    locked.chmod(0)

    for label, data in (("png", png), ("dcm", dcm)):
        for cut in sorted({0, 1, 8, 33, 128, 132, 200, len(data) // 4, len(data) // 2,
                           len(data) - 16, len(data) - 1}):
            (folder / f"cut_{label}_{cut:06d}.{label}").write_bytes(data[:cut])
        for k in range(12):
            flipped = bytearray(data)
            for position in rng.integers(0, len(data), int(rng.integers(1, 64))):
                flipped[position] ^= int(rng.integers(1, 256))
            (folder / f"flip_{label}_{k:02d}.{label}").write_bytes(bytes(flipped))
    yield folder
    locked.chmod(stat.S_IRUSR | stat.S_IWUSR)  # let the temporary folder be removed


def _listed(folder: Path) -> set[Path]:
    """The entries a scan must account for, counted without the code under test."""
    return {folder / name for name in os.listdir(folder)}


def _scan_with_deadline(inputs: list, seconds: float = 120.0) -> list:
    """Scan in a thread so that a reader blocking on a pipe fails the test, not hangs it."""
    out: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.extend(scan_images(inputs))
        except BaseException as error:  # the test asserts that nothing escapes
            errors.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "the scan blocked (a FIFO or device opened for reading?)"
    assert not errors, f"an exception escaped the scan: {errors[0]!r}"
    return out


def test_every_corpus_file_is_read_or_skipped_with_a_specific_reason(corpus):
    results = _scan_with_deadline([corpus])
    sources = [item.source for item in results]
    assert len(sources) == len(set(sources)), "an input came out twice"
    assert set(sources) == _listed(corpus)
    by_name = {item.source.name: item for item in results}
    for name, wanted in EXPECTED.items():
        item = by_name[name]
        if wanted is None:
            assert isinstance(item, LoadedImage), f"{name}: {item}"
        else:
            assert isinstance(item, Skipped), f"{name} was read"
            assert wanted in item.reason, f"{name}: {item.reason!r}"
    locked = by_name["locked.png"]
    if os.access(corpus / "locked.png", os.R_OK):  # root reads anything
        assert isinstance(locked, LoadedImage)
    else:
        assert isinstance(locked, Skipped) and locked.reason == "permission denied"
    for item in results:
        if isinstance(item, Skipped):
            assert item.reason and "\n" not in item.reason and "Traceback" not in item.reason
            str(item).encode("utf-8")  # printable, even for undecodable names
        else:
            pixels = item.pixels
            assert pixels.dtype == np.float32 and pixels.ndim == 2
            assert np.isfinite(pixels).all() and 0 <= pixels.min() <= pixels.max() <= 1
    # truncated files never pass as images, except where nothing of the pixels is missing
    for name, item in by_name.items():
        if name.startswith("cut_") and int(name[8:14]) < 200:
            assert isinstance(item, Skipped), name


def test_unusable_window_is_ignored_with_a_warning_not_a_blank_image(corpus):
    image = read_image(corpus / "width0.dcm")
    assert image.normalisation.startswith("percentiles")
    assert any("unusable VOI window" in w for w in image.warnings)
    assert image.pixels.std() > 0.05
    good = read_image(corpus / "good.dcm")
    np.testing.assert_array_equal(image.pixels, good.pixels)  # same data, same fallback


def test_undecodable_names_read_and_print(corpus):
    path = os.fsencode(corpus) + b"/" + NON_UTF8
    assert read_image(path).pixels.shape == (48, 40)
    shown = display_path(path)
    assert shown.endswith("bad_\\xff\\xfe.png")
    shown.encode("utf-8")


def test_too_long_and_missing_names_have_their_own_reasons(tmp_path):
    with pytest.raises(ImageReadError, match="file name too long"):
        read_image(tmp_path / ("x" * 300 + ".png"))
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "absent.png")
    with pytest.raises(ImageReadError, match="a folder, not a file"):
        read_image(tmp_path)


def test_permission_denied_is_named(corpus, monkeypatch):
    """Independent of running as root: the open itself refuses."""
    def refuse(path, flags, *args):
        raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(ImageReadError, match="good.png: permission denied$"):
        read_image(corpus / "good.png")


@pytest.mark.parametrize("error", [
    ValueError("bad"), TypeError("bad"), AttributeError("bad"), NotImplementedError("bad"),
    KeyError("bad"), IndexError("bad"), struct.error("bad"), EOFError("bad"),
    zlib.error("bad"), RecursionError("deep"), MemoryError(), OverflowError("big"),
    UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), RuntimeError("anything")])
@pytest.mark.parametrize("which", ["dicom", "raster"])
def test_any_decoder_exception_becomes_image_read_error(corpus, monkeypatch, error, which):
    def explode(*args, **kwargs):
        raise error

    if which == "dicom":
        monkeypatch.setattr(dicom_reader, "_to_image", explode)
        path = corpus / "good.dcm"
    else:
        monkeypatch.setattr(raster_reader.Image, "open", explode)
        path = corpus / "good.png"
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert caught.value.problem and path.name in str(caught.value)


def _report_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _walk_entries(root: Path) -> set[str]:
    """Every entry a recursive scan of ``root`` must list: files, plus hidden folders and
    links to folders (not descended), as display text."""
    found: set[str] = set()
    for here, dirs, files in os.walk(root):
        keep = []
        for name in dirs:
            if name.startswith(".") or os.path.islink(os.path.join(here, name)):
                found.add(display_path(os.path.join(here, name)))
            else:
                keep.append(name)
        dirs[:] = keep
        found |= {display_path(os.path.join(here, name)) for name in files}
    return found


@pytest.mark.slow
def test_cli_convert_over_pydicom_and_the_corpus_lists_every_file(corpus, tmp_path):
    data = pytest.importorskip("pydicom.data")
    roots = [Path(data.DATA_ROOT) / "test_files"]
    extra = data.get_testdata_file("RG3_UNCR.dcm", download=False)  # pydicom-data's store
    if extra is not None:
        roots.append(Path(extra).parent)
    expected = set().union(*(_walk_entries(r) for r in roots)) | _walk_entries(corpus)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONIOENCODING="utf-8")  # strict stdout: a bad name must not crash
    done = subprocess.run(
        [sys.executable, "-m", "cxrgan_desktop", "convert", *map(str, roots), str(corpus),
         "--out", str(out)], capture_output=True, text=True, errors="backslashreplace",
        env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    rows = _report_rows(out / "conversion_report.csv")
    assert {row["status"] for row in rows} <= {"converted", "skipped"}
    sources = [row["source"] for row in rows]
    assert len(sources) == len(set(sources)) and set(sources) == expected
    converted = [row for row in rows if row["status"] == "converted"]
    assert all((out / row["output"]).is_file() for row in converted)
    assert len(os.listdir(out)) >= len(converted)
    assert all(row["note"] for row in rows if row["status"] == "skipped")
    assert f"skipped {len(rows) - len(converted)} file(s):" in done.stderr
    assert f"converted {len(converted)} image(s)" in done.stdout
    by_source = {Path(row["source"]).name: row for row in rows}
    assert "badVR.dcm" in by_source and by_source["badVR.dcm"]["status"] == "skipped"
    assert "1A" in by_source["badVR.dcm"]["note"]


def test_training_listing_and_cache_account_for_every_file(corpus, tmp_path):
    from cxrgan_desktop.engine.training.dataset import DatasetSpec, list_dataset
    from cxrgan_desktop.engine.training.image_cache import SKIPPED_CSV, build_cache

    spec = DatasetSpec(corpus)
    listing = list_dataset(spec)
    listed = [Path(p) for p in listing.files] + [s.source for s in listing.skipped]
    assert len(listed) == len(set(listed)) and set(listed) == _listed(corpus)
    cache = build_cache(spec, tmp_path / "cache", 8)
    rows = _report_rows(tmp_path / "cache" / SKIPPED_CSV)
    cached = {display_path(name) for name in cache.files}
    skipped = {row["path"] for row in rows}
    assert not cached & skipped
    assert cached | skipped == {display_path(p.name) for p in _listed(corpus)}
    assert {row["path"]: row["stage"] for row in rows}["bomb.png"] == "read"


def test_fid_folder_accounts_for_every_file(corpus):
    from cxrgan_desktop.tasks.fid_sources import FolderSource

    source = FolderSource([corpus])
    batches = list(source.batches(8))
    read = sum(int(b.shape[0]) for b in batches)
    assert read + len(source.skipped) + len(source.ignored) == len(_listed(corpus))
    assert {s.source.name for s in source.ignored} >= {"notes.txt", ".hidden.png"}
    assert any("pipe.png: not a regular file" in text for text in source.skipped)
