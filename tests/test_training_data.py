"""Training data: the dataset listing (filters, skips, fingerprint) and the image cache
(pyramid, quantisation, resume after cancel, invalidation)."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.engine.training import image_cache
from cxrgan_desktop.engine.training.dataset import DatasetSpec, list_dataset
from cxrgan_desktop.engine.training.image_cache import (
    CachedImages,
    ImageCache,
    build_cache,
    default_cache_dir,
)
from cxrgan_desktop.engine.training.preprocess import make_square
from cxrgan_desktop.imaging.png16 import read_png16, write_png16
from cxrgan_desktop.labels.chestxray14 import FINDINGS, read_data_entry_csv, write_data_entry_csv
from cxrgan_desktop.tasks.phantom import CSV_NAME, image_name, write_phantoms

N = 12


@pytest.fixture(scope="module")
def phantom_master(tmp_path_factory) -> Path:
    return write_phantoms(tmp_path_factory.mktemp("phantoms"), n=N, size=64, seed=0,
                          images_per_patient=1)


@pytest.fixture
def phantoms(phantom_master, tmp_path) -> Path:
    """A private copy: tests may change files in it."""
    return Path(shutil.copytree(phantom_master, tmp_path / "images"))


@pytest.fixture
def spec(phantoms) -> DatasetSpec:
    return DatasetSpec(phantoms, phantoms / CSV_NAME)


@pytest.fixture
def reads(monkeypatch) -> list[Path]:
    """Every file the cache builder reads, in order."""
    seen: list[Path] = []
    real = image_cache.read_image

    def counting(path):
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(image_cache, "read_image", counting)
    return seen


def _rows(folder: Path):
    return read_data_entry_csv(folder / CSV_NAME)


# -- listing ----------------------------------------------------------------------------------

def test_listing_matches_csv(spec, phantoms):
    listing = list_dataset(spec)
    rows = _rows(phantoms)
    assert [f.name for f in listing.files] == sorted(r.image_index for r in rows)
    assert listing.labels == tuple(r.findings for r in sorted(rows, key=lambda r: r.image_index))
    assert {s.source.name for s in listing.skipped} == {CSV_NAME, "manifest.json"}
    assert all("not an image" in s.reason for s in listing.skipped)
    # without a label file: the same files, no labels
    plain = list_dataset(DatasetSpec(phantoms))
    assert plain.files == listing.files and plain.labels is None


def test_listing_filters(spec, phantoms):
    rows = _rows(phantoms)
    ap = {rows[i].image_index for i in (0, 3, 7)}
    rows = [dataclasses.replace(r, view_position="AP" if r.image_index in ap else "PA")
            for r in rows]
    write_data_entry_csv(phantoms / CSV_NAME, rows)
    common = max(FINDINGS, key=lambda f: sum(f in r.findings for r in rows))
    assert sum(common in r.findings for r in rows) >= 2  # the filter below selects something

    def names(**kw):
        return [f.name for f in list_dataset(dataclasses.replace(spec, **kw)).files]

    assert names(view_positions=("PA",)) == sorted(r.image_index for r in rows
                                                   if r.view_position == "PA")
    assert names(view_positions=("ap",)) == sorted(ap)  # case-insensitive
    assert names(require_findings=(common,)) == sorted(r.image_index for r in rows
                                                       if common in r.findings)
    assert names(exclude_findings=(common,)) == sorted(r.image_index for r in rows
                                                       if common not in r.findings)
    assert names(view_positions=("PA",), exclude_findings=(common,), max_images=3) == sorted(
        r.image_index for r in rows if r.view_position == "PA" and common not in r.findings)[:3]
    listing = list_dataset(dataclasses.replace(spec, view_positions=("PA",), max_images=5))
    reasons = {s.source.name: s.reason for s in listing.skipped}
    assert all("view position AP" in reasons[name] for name in ap)
    assert sum("max_images" in r for r in reasons.values()) == N - len(ap) - 5
    assert len(listing.labels) == 5


def test_files_and_rows_that_do_not_match(spec, phantoms, caplog):
    rows = _rows(phantoms)
    write_data_entry_csv(phantoms / CSV_NAME, rows[1:])  # image 0 loses its row
    (phantoms / image_name(11, 0)).unlink()  # its row loses its file
    with caplog.at_level("INFO"):
        listing = list_dataset(spec)
    assert len(listing.files) == N - 2
    reasons = {s.source.name: s.reason for s in listing.skipped}
    assert "no row" in reasons[image_name(0, 0)]
    assert any("1 of 11 rows have no file" in m for m in caplog.messages)


def test_unknown_finding_and_bad_specs(phantoms):
    with pytest.raises(ValueError, match="Cardiomegaly") as err:
        DatasetSpec(phantoms, phantoms / CSV_NAME, require_findings=("Cardiomegally",))
    assert "Cardiomegally" in str(err.value) and "Pleural_Thickening" in str(err.value)
    with pytest.raises(ValueError, match="unknown finding"):
        DatasetSpec.from_json({"image_dir": str(phantoms), "labels_csv": str(phantoms / CSV_NAME),
                               "exclude_findings": ["Pneumonia", "Covid"]})
    with pytest.raises(ValueError, match="labels_csv"):
        DatasetSpec(phantoms, view_positions=("PA",))
    with pytest.raises(ValueError, match="max_images"):
        DatasetSpec(phantoms, max_images=0)


def test_spec_json_round_trip(phantoms):
    spec = DatasetSpec(phantoms, phantoms / CSV_NAME, ("PA",), ("Effusion",), ("Hernia",), 7)
    again = DatasetSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec


def test_empty_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no usable image") as err:
        list_dataset(DatasetSpec(empty))
    assert str(empty) in str(err.value)
    (empty / "notes.txt").write_text("hello")
    (empty / "blank.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"2 files skipped.*not an image") as err:
        list_dataset(DatasetSpec(empty))
    assert "empty" in str(err.value)
    with pytest.raises(ValueError, match="not a folder"):
        list_dataset(DatasetSpec(tmp_path / "missing"))


def test_fingerprint_follows_the_data(spec, phantoms):
    first = list_dataset(spec).fingerprint()
    assert list_dataset(spec).fingerprint() == first
    assert list_dataset(dataclasses.replace(spec, max_images=4)).fingerprint() != first
    rows = _rows(phantoms)
    hernia = dataclasses.replace(rows[0], findings=frozenset({"Hernia"}))
    write_data_entry_csv(phantoms / CSV_NAME, [hernia, *rows[1:]])
    relabelled = list_dataset(spec).fingerprint()
    assert relabelled != first
    path = phantoms / image_name(2, 0)
    path.write_bytes(path.read_bytes() + b"\0")
    assert list_dataset(spec).fingerprint() != relabelled


# -- cache contents ---------------------------------------------------------------------------

def test_pyramid_is_exact_2x2_means(spec, tmp_path):
    cache = build_cache(spec, tmp_path / "cache", 32)
    assert cache.resolutions == (4, 8, 16, 32) and cache.count == N and cache.bit_depth == 16
    for low, high in zip(cache.resolutions, cache.resolutions[1:], strict=False):
        big = cache.array(high).astype(np.float64)
        means = big.reshape(N, low, 2, low, 2).mean(axis=(2, 4))
        assert np.abs(cache.array(low) - means).max() <= 1.0  # one quantisation step


def test_max_resolution_matches_an_antialiased_resize(spec, phantoms, tmp_path):
    cache = build_cache(spec, tmp_path / "cache", 32)
    for i, name in enumerate(cache.files):
        source = torch.from_numpy(read_png16(phantoms / name).astype(np.float32))
        ref = torch.nn.functional.interpolate(source[None, None], size=(32, 32), mode="bicubic",
                                              antialias=True)[0, 0].clamp(0, 1).numpy()
        got = cache.array(32)[i] / 65535.0
        assert np.abs(got - ref).mean() < 0.015 and np.abs(got - ref).max() < 0.1


def test_values_round_trip_at_16_and_8_bits(spec, phantoms, tmp_path):
    exact = build_cache(spec, tmp_path / "c16", 64)  # no resize: the PNGs' own values
    for i, name in enumerate(exact.files):
        source = np.round(read_png16(phantoms / name).astype(np.float64) * 65535)
        np.testing.assert_array_equal(exact.array(64)[i], source)
    c8 = build_cache(spec, tmp_path / "c8", 64, bit_depth=8)
    assert c8.array(64).dtype == np.uint8 and exact.array(64).dtype == np.uint16
    for cache, full in ((exact, 65535), (c8, 255)):
        for r in cache.resolutions:
            images = CachedImages(cache, r)
            values = torch.stack([images[i] for i in range(len(images))])[:, 0].numpy()
            np.testing.assert_array_equal(np.round(values * full), cache.array(r))
    # 8 bits = the 16-bit values rounded to 1/255 (half a step, plus the 16-bit half step)
    diff = np.abs(c8.array(16) / 255.0 - exact.array(16) / 65535.0)
    assert diff.max() <= 0.5 / 255 + 0.5 / 65535 + 1e-9


def test_cached_images_dataset(spec, tmp_path):
    cache = build_cache(spec, tmp_path / "cache", 16)
    images = CachedImages(cache, 8)
    assert len(images) == N
    item = images[3]
    assert item.shape == (1, 8, 8) and item.dtype == torch.float32
    assert float(item.min()) >= 0.0 and float(item.max()) <= 1.0 and float(item.std()) > 0
    batch = cache.batch(16, [5, 0, 5])
    assert batch.shape == (3, 1, 16, 16) and torch.equal(batch[0], CachedImages(cache, 16)[5])
    assert len(pickle.dumps(images)) < 20_000  # workers get the description, not the arrays
    assert torch.equal(pickle.loads(pickle.dumps(images))[3], item)
    with pytest.raises(ValueError, match="no 32 px"):
        CachedImages(cache, 32)
    with pytest.raises(IndexError):
        images[N]
    assert not cache.array(8).flags.writeable
    reopened = ImageCache.open(tmp_path / "cache")
    assert reopened.fingerprint == cache.fingerprint == list_dataset(spec).fingerprint()
    assert reopened.labels == list_dataset(spec).labels
    meta = json.loads((tmp_path / "cache" / "cache.json").read_text())
    assert meta["software_version"] and meta["square"] == "crop" and meta["spec"]


def test_corrupt_png_is_left_out_with_a_reason(spec, phantoms, tmp_path):
    bad = phantoms / image_name(3, 0)
    bad.write_bytes(bad.read_bytes()[:60])  # truncated: the header passes, the pixels do not
    cache = build_cache(spec, tmp_path / "cache", 16)
    assert cache.count == N - 1 and image_name(3, 0) not in cache.files
    assert [rel for rel, _ in cache.failed] == [image_name(3, 0)]
    assert cache.failed[0][1]  # the reader's reason
    by_name = {r.image_index: r.findings for r in _rows(phantoms)}
    assert cache.labels == tuple(by_name[f] for f in cache.files)
    assert len(CachedImages(cache, 16)) == N - 1 and cache.array(4).shape[0] == N - 1


def test_square_crop_and_pad(tmp_path):
    tall = np.zeros((48, 32), np.float32)
    tall[8:40] = 0.5
    np.testing.assert_array_equal(make_square(tall, "crop"), np.full((32, 32), 0.5, np.float32))
    padded = make_square(tall, "pad")
    assert padded.shape == (48, 48) and padded[:, :8].max() == 0 and padded[:, 40:].max() == 0
    np.testing.assert_array_equal(padded[:, 8:40], tall)
    folder = tmp_path / "tall"
    folder.mkdir()
    write_png16(folder / "tall.png", tall)
    pad = build_cache(DatasetSpec(folder), tmp_path / "pad", 16, square="pad")
    # black bars left and right (Lanczos rings by under 2 %), the grey band in the middle
    assert pad.array(16)[0, :, :2].max() < 0.02 * 65535
    assert abs(int(pad.array(16)[0, 6:10, 6:10].mean()) - 32768) < 0.02 * 65535
    crop = build_cache(DatasetSpec(folder), tmp_path / "crop", 16)
    assert np.all(crop.array(16)[0] == 32768)


# -- resume and invalidation ------------------------------------------------------------------

def test_cancel_then_resume_reads_only_the_rest(spec, tmp_path, reads, monkeypatch):
    monkeypatch.setattr(image_cache, "CHECKPOINT_EVERY", 4)
    cancel = threading.Event()
    saved: list[int] = []

    def progress(fraction, message):
        done = int(message.split("/")[0])
        if done == 4:  # the periodic checkpoint was written before this report
            state = json.loads((tmp_path / "cache" / "progress.json").read_text())
            saved.append(state["completed"])
        if fraction >= 0.5:
            cancel.set()

    with pytest.raises(Cancelled):
        build_cache(spec, tmp_path / "cache", 16, progress=progress, cancel=cancel)
    assert saved == [4] and len(reads) == N // 2
    with pytest.raises(ValueError, match="incomplete"):
        ImageCache.open(tmp_path / "cache")
    first = list(reads)
    reads.clear()
    messages: list[str] = []
    cache = build_cache(spec, tmp_path / "cache", 16,
                        progress=lambda f, m: messages.append(m))
    assert sorted(first + reads) == sorted(list_dataset(spec).files)  # each file read once
    assert len(reads) == N - N // 2 and messages[-1] == f"{N}/{N} images"
    whole = build_cache(spec, tmp_path / "whole", 16)
    for r in cache.resolutions:
        np.testing.assert_array_equal(cache.array(r), whole.array(r))
    assert cache.files == whole.files and cache.labels == whole.labels
    reads.clear()
    build_cache(spec, tmp_path / "cache", 16)  # complete: nothing to read
    assert reads == []


def test_changed_source_or_settings_rebuild(spec, phantoms, tmp_path, reads, caplog):
    folder = tmp_path / "cache"
    build_cache(spec, folder, 16)
    assert len(reads) == N
    path = phantoms / image_name(1, 0)
    size = path.stat().st_size
    flipped = np.ascontiguousarray(read_png16(path)[:, ::-1])
    flipped[:4, :4] = 0  # a different image, and a different file size
    write_png16(path, flipped)
    assert path.stat().st_size != size
    reads.clear()
    with caplog.at_level("INFO"):
        cache = build_cache(spec, folder, 16)
    assert len(reads) == N and any("source images" in m for m in caplog.messages)
    fresh = build_cache(spec, tmp_path / "fresh", 16)
    np.testing.assert_array_equal(cache.array(16), fresh.array(16))
    reads.clear()
    caplog.clear()
    with caplog.at_level("INFO"):
        cache = build_cache(spec, folder, 16, bit_depth=8)
    assert len(reads) == N and cache.array(16).dtype == np.uint8
    assert any("bit_depth" in m for m in caplog.messages)
    reads.clear()
    cache = build_cache(spec, folder, 8, bit_depth=8)
    assert len(reads) == N and cache.resolutions == (4, 8)
    assert not (folder / "res_0016.npy").exists()


def test_open_rejects_incomplete_or_missing(spec, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="not an image cache"):
        ImageCache.open(tmp_path / "nothing")

    def fail(path):
        raise RuntimeError("power cut")

    monkeypatch.setattr(image_cache, "read_image", fail)
    with pytest.raises(RuntimeError):
        build_cache(spec, tmp_path / "cache", 8)
    with pytest.raises(ValueError, match=r"incomplete image cache \(0 of 12"):
        ImageCache.open(tmp_path / "cache")


def test_bad_settings_and_default_folder(spec, tmp_path):
    for kwargs in ({"max_resolution": 24}, {"max_resolution": 2},
                   {"max_resolution": 16, "bit_depth": 12},
                   {"max_resolution": 16, "square": "stretch"}):
        with pytest.raises(ValueError):
            build_cache(spec, tmp_path / "cache", **kwargs)
    folder = default_cache_dir(spec, 256)
    assert folder.parent == paths.cache_dir() / "datasets"
    assert folder == default_cache_dir(DatasetSpec(spec.image_dir, spec.labels_csv), 256)
    assert folder != default_cache_dir(spec, 256, bit_depth=8)
    assert folder != default_cache_dir(spec, 512)


def test_damaged_partial_build_starts_over(spec, tmp_path, reads):
    cancel = threading.Event()

    def stop_after_three(fraction, message):
        if message.startswith("3/"):
            cancel.set()

    with pytest.raises(Cancelled):
        build_cache(spec, tmp_path / "cache", 8, progress=stop_after_three, cancel=cancel)
    (tmp_path / "cache" / "res_0008.npy").write_bytes(b"damaged")
    reads.clear()
    cache = build_cache(spec, tmp_path / "cache", 8)
    assert len(reads) == N and cache.count == N
