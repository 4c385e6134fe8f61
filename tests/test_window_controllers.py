"""The main window's controllers, apart from the window: Generate and Export end to end on the
phantom generator, the gallery's images read in a worker with the last choice winning, and
the model cache shared by worker and GUI threads under its lock.

References are independent of the code under test: files read back with PIL and pydicom,
hashes with hashlib, expected load counts from the cache's definition.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QFileDialog, QInputDialog, QWidget

from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.jobs.model_cache import ModelCache
from cxrgan_desktop.gui.jobs.slot import JobSlot
from cxrgan_desktop.gui.panels.generate import GeneratePanel, GenerateRequest
from cxrgan_desktop.gui.panels.generate_controller import GenerateController
from cxrgan_desktop.gui.shell import image_session
from cxrgan_desktop.gui.shell.export_controller import (
    ExportController,
    export_formats,
    export_item,
)
from cxrgan_desktop.gui.viewer.gallery import Gallery, GalleryEntry, Select
from cxrgan_desktop.gui.viewer.viewer import ImageViewer
from cxrgan_desktop.imaging.png16 import write_png16


def _png16(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.uint16)


# -- Generate and Export ----------------------------------------------------------------------

@pytest.fixture
def parts(qtbot):
    """A Generate panel, gallery and viewer with their controllers, as the window wires them
    (without the window)."""
    parent = QWidget()
    qtbot.addWidget(parent)
    slot, settings = JobSlot(parent), Settings()
    loads = []

    def load(path: str):
        from cxrgan_desktop.engine.checkpoints import load_generator

        loads.append(threading.current_thread() is threading.main_thread())
        return load_generator(path)

    panel, gallery, viewer = GeneratePanel(parent), Gallery(parent), ImageViewer(parent)
    generate = GenerateController(slot, panel, settings, ModelCache(load), parent)
    generate.itemReady.connect(gallery.add_item)
    exporter = ExportController(slot, gallery, viewer, panel, settings, parent)
    yield generate, exporter, gallery, viewer, loads
    if slot.runner is not None:
        slot.runner.cancel()
        slot.runner.wait()


def _generate(qtbot, generate, model_path: Path, seed: int, count: int = 3):
    items = []
    generate.itemReady.connect(items.append)
    request = GenerateRequest(model=str(model_path), count=count, seed=seed, device="cpu",
                              batch_size=2)
    with qtbot.waitSignal(generate.finished, timeout=60_000) as finished:
        generate.start(request)
    qtbot.waitUntil(lambda: not generate.slot.is_running(), timeout=10_000)
    generate.itemReady.disconnect(items.append)
    return items, finished.args[0]


def test_generate_fills_the_gallery_from_the_worker_and_keeps_the_model(
        qtbot, parts, phantom_generator):
    generate, _, gallery, _, loads = parts
    model_path = Path(phantom_generator.path)
    items, result = _generate(qtbot, generate, model_path, seed=11)
    assert [i.entry.title for i in items] == ["seed 11 #0", "seed 11 #1", "seed 11 #2"]
    assert [i.select for i in items] == [Select.YES, Select.NO, Select.NO]
    assert [i.entry.path for i in items] == result.files
    sha = hashlib.sha256(model_path.read_bytes()).hexdigest()
    from cxrgan_desktop.engine.render import latents_for_seed

    latents = latents_for_seed(11, 3, phantom_generator.config.latent_size)
    for index, item in enumerate(items):
        details = dict(item.entry.details)
        latent = details.pop("latent")  # what the Findings sliders start from
        np.testing.assert_array_equal(np.asarray(latent, np.float32), latents[index])
        assert details == {"seed": 11, "index": index, "model_name": phantom_generator.name,
                           "model_sha256": sha, "model_path": str(model_path),
                           "truncation": 1.0}
        on_disk = _png16(item.entry.path)  # what the gallery got is what was written
        assert item.pixels.shape == on_disk.shape == (32, 32)
        np.testing.assert_allclose(item.pixels, on_disk / 65535.0, atol=0.5 / 65535)
    assert [e.title for e in gallery.entries()] == [i.entry.title for i in items]
    assert gallery.selected_entries()[0].title == "seed 11 #0"
    _generate(qtbot, generate, model_path, seed=12, count=1)
    assert loads == [False]  # loaded once, in a worker; the second run reused it


def test_export_writes_png16_and_dicom_of_the_generated_images(
        qtbot, parts, phantom_generator, tmp_path, monkeypatch):
    from cxrgan_desktop.tasks.export import EXPORT_FORMATS

    generate, exporter, gallery, viewer, _ = parts
    items, _ = _generate(qtbot, generate, Path(phantom_generator.path), seed=3, count=2)
    gallery.selectAll()
    for image_format in ("png16", "dicom"):
        out = tmp_path / image_format
        monkeypatch.setattr(QInputDialog, "getItem",
                            lambda *a, f=image_format, **k: (EXPORT_FORMATS[f], True))
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, o=out, **k: str(o))
        with qtbot.waitSignal(exporter.finished, timeout=30_000) as finished:
            exporter.export_selected()
        assert finished.args[0].skipped == []
        qtbot.waitUntil(lambda: not exporter.slot.is_running(), timeout=10_000)
    for item in items:
        source = _png16(item.entry.path)
        name = f"seed3_{item.entry.details['index']:05d}"
        assert np.array_equal(_png16(tmp_path / "png16" / f"{name}.png"), source)
        ds = pydicom.dcmread(tmp_path / "dicom" / f"{name}.dcm")
        assert np.array_equal(ds.pixel_array, source)
        assert ds.ConversionType == "SYN" and ds.Modality == "OT"
        window = viewer.window()  # the window on screen travels with the DICOM
        assert (float(ds.WindowCenter), float(ds.WindowWidth)) == pytest.approx(
            (window.center, window.width))


def test_dicom_is_not_offered_when_a_real_image_is_selected(tmp_path):
    real = GalleryEntry(tmp_path / "chest.dcm", "chest.dcm", {"normalisation": "voi"})
    made = GalleryEntry(tmp_path / "s.png", "seed 2 #5", {
        "seed": 2, "index": 5, "model_name": "m", "model_sha256": "ab"})
    assert export_formats([made]) == ["png16", "png8", "dicom"]
    assert export_formats([made, real]) == ["png16", "png8"]
    assert export_item(real).name == "chest" and not export_item(real).synthetic
    item = export_item(made)
    assert (item.name, item.seed, item.index, item.model_sha256) == ("seed2_00005", 2, 5, "ab")


# -- the viewer's image is read in a worker; the last choice wins -----------------------------

@pytest.fixture
def two_files(main_window, tmp_path):
    """Three PNGs in the window's gallery (none selected yet), distinct in every pixel."""
    rng = np.random.default_rng(4)
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.png"
        write_png16(path, rng.random((24, 20)).astype(np.float32))
        main_window.gallery.add_entry(GalleryEntry(path, name), np.zeros((4, 4)))
    return main_window


@pytest.fixture
def slow_a(monkeypatch):
    """Reading a.png blocks in the worker until ``release`` is set; every read is logged with
    whether it ran on the GUI thread."""
    started, release, reads = threading.Event(), threading.Event(), []
    real = image_session.decode_entry

    def decode(entry):
        reads.append((entry.title, threading.current_thread() is threading.main_thread()))
        if entry.title == "a":
            started.set()
            release.wait(30)  # bounded: a read wrongly run on the GUI thread still ends
        return real(entry)

    monkeypatch.setattr(image_session, "decode_entry", decode)
    yield started, release, reads
    release.set()


def _idle(loader) -> bool:
    return not loader.pending() and not loader.is_running()


def test_a_quick_second_choice_is_shown_not_the_slow_first(two_files, slow_a, qtbot, tmp_path):
    window, (started, release, reads) = two_files, slow_a
    shown = []
    window.images.shown.connect(lambda entry: shown.append(entry.title))
    window.gallery.setCurrentRow(0)  # a: its read blocks in the worker
    qtbot.waitUntil(started.is_set, timeout=10_000)
    window.gallery.setCurrentRow(1)  # b, chosen while a is still being read
    release.set()  # a's read finishes after b was chosen
    qtbot.waitUntil(lambda: _idle(window.images.viewer_loader), timeout=10_000)
    assert shown == ["b"]
    assert np.array_equal(window.viewer.image(), _png16(tmp_path / "b.png"))
    assert reads == [("a", False), ("b", False)]  # both read off the GUI thread


def test_choices_made_during_a_slow_read_collapse_to_the_last(two_files, slow_a, qtbot,
                                                              tmp_path):
    window, (started, release, reads) = two_files, slow_a
    shown = []
    window.images.shown.connect(lambda entry: shown.append(entry.title))
    window.gallery.setCurrentRow(0)
    qtbot.waitUntil(started.is_set, timeout=10_000)
    window.gallery.setCurrentRow(1)
    window.gallery.setCurrentRow(2)
    release.set()
    qtbot.waitUntil(lambda: _idle(window.images.viewer_loader), timeout=10_000)
    assert [title for title, _ in reads] == ["a", "c"]  # b was overtaken before it was read
    assert shown == ["c"]
    assert np.array_equal(window.viewer.image(), _png16(tmp_path / "c.png"))


def test_compare_reads_both_in_the_worker_and_c_while_reading_cancels(two_files, slow_a,
                                                                      qtbot, tmp_path):
    window, (started, release, reads) = two_files, slow_a
    window.gallery.item(0).setSelected(True)
    window.gallery.item(1).setSelected(True)  # selected, not made current: nothing read yet
    window.images.toggle_compare()  # reads a (blocked) and b
    qtbot.waitUntil(started.is_set, timeout=10_000)
    window.images.toggle_compare()  # C again while reading: back to the single viewer
    release.set()
    loader = window.images.compare_loader
    qtbot.waitUntil(lambda: _idle(loader), timeout=10_000)
    assert window.centre.currentWidget() is window.viewer

    window.images.toggle_compare()  # now both are read (a no longer blocks) and shown
    qtbot.waitUntil(lambda: window.centre.currentWidget() is window.compare, timeout=10_000)
    expected = {name: _png16(tmp_path / f"{name}.png") for name in ("a", "b")}
    pair = [window.compare.left.image(), window.compare.right.image()]
    assert sorted(n for n, ref in expected.items() for img in pair
                  if np.array_equal(img, ref)) == ["a", "b"]
    assert all(not on_gui for _, on_gui in reads)
    window.images.toggle_compare()
    assert window.centre.currentWidget() is window.viewer


# -- the model cache: shared by the worker and GUI threads, under its lock --------------------

class _Fake:
    def __init__(self, path: str) -> None:
        self.path = path


def _touch_later(path: Path) -> None:
    """Move the file's modification time on by a second (a file replaced in place)."""
    mtime = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(mtime, mtime))


def test_cache_loads_once_per_file_version(tmp_path):
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for path in (first, second):
        path.write_bytes(b"weights")
    loads = []
    cache = ModelCache(lambda path: loads.append(path) or _Fake(path))
    model = cache.get(first)
    assert cache.get(str(first)) is model and loads == [str(first)]
    _touch_later(first)
    assert cache.get(first) is not model and len(loads) == 2
    cache.forget(second)  # another file: the kept one stays
    cache.get(first)
    assert len(loads) == 2
    cache.forget(first)
    cache.get(first)
    assert len(loads) == 3
    cache.get(second)  # one slot: the other file replaces it
    cache.get(first)
    assert loads[-2:] == [str(second), str(first)]
    first.unlink()
    with pytest.raises(FileNotFoundError):
        cache.get(first)  # a removed file is never served from the cache


def test_forget_does_not_wait_for_a_load_and_that_load_is_not_kept(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"weights")
    entered, release, forgotten = threading.Event(), threading.Event(), threading.Event()

    def slow(name: str) -> _Fake:
        entered.set()
        release.wait(30)
        return _Fake(name)

    cache = ModelCache(slow)
    got = []
    loader = threading.Thread(target=lambda: got.append(cache.get(path)))
    loader.start()
    assert entered.wait(30)
    gui = threading.Thread(target=lambda: (cache.forget(path), forgotten.set()))
    gui.start()
    assert forgotten.wait(30) and not release.is_set()  # returned while the load was blocked
    release.set()
    loader.join(30)
    gui.join(30)
    assert got and got[0].path == str(path)  # the job still gets its model...
    assert cache.kept_path() is None  # ...but a load that raced a removal is not kept


def test_threads_always_get_the_model_of_the_file_they_asked_for(tmp_path):
    files = [tmp_path / f"m{k}.safetensors" for k in range(3)]
    for path in files:
        path.write_bytes(b"weights")
    cache = ModelCache(_Fake)
    wrong = []

    def work(start: int) -> None:
        for step in range(400):
            path = files[(start + step) % 3]
            if cache.get(path).path != str(path):
                wrong.append(path)
            if step % 5 == 0:
                cache.forget(files[step % 3])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert wrong == [] and not any(t.is_alive() for t in threads)
