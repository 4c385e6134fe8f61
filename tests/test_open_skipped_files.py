"""The window's Open with bad files among good ones: the good ones open, one dialog lists
the rest with their reasons (issue 18: one bad file opened 0 of 24 images)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")


from cxrgan_desktop.gui.shell.image_session import skipped_files_text
from cxrgan_desktop.imaging.readers import Skipped


@pytest.fixture
def window(main_window):
    return main_window


def _good_images(folder, count):
    rng = np.random.default_rng(24)
    paths = []
    for i in range(count):
        path = folder / f"good_{i:02d}.png"
        Image.fromarray(rng.integers(0, 255, (16, 12), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
def test_open_with_bad_files_opens_the_good_ones_and_lists_the_rest(window, qtbot, tmp_path,
                                                                     dialogs):
    good = _good_images(tmp_path, 24)
    bad_dicom = tmp_path / "a_bad.dcm"  # sorts first: the case that opened nothing before
    bad_dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 40)
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    nan_tiff = tmp_path / "nan.tif"
    Image.fromarray(np.full((8, 8), np.nan, np.float32)).save(nan_tiff)
    window.load_image_files([bad_dicom, *good[:12], pipe, nan_tiff, *good[12:]])
    with qtbot.waitSignal(window.runner.done, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: window.gallery.count() == 24, timeout=10_000)
    assert sorted(e.path.name for e in window.gallery.entries()) == [p.name for p in good]
    assert len(dialogs) == 1
    kind, title, text = dialogs[0]
    assert kind == "warning" and "not opened" in title
    assert "Opened 24 image(s). 3 file(s) were not opened" in text
    lines = text.splitlines()
    assert any("pipe.png: not a regular file" in line for line in lines)
    assert any("nan.tif:" in line and "not finite" in line for line in lines)
    assert any("a_bad.dcm:" in line for line in lines)


def test_all_good_files_open_without_a_dialog(window, qtbot, tmp_path, dialogs):
    _good_images(tmp_path, 3)
    window.load_image_files([tmp_path])
    with qtbot.waitSignal(window.runner.done, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: window.gallery.count() == 3, timeout=10_000)
    assert dialogs == []


def test_a_long_list_is_cut_and_counted(tmp_path):
    skipped = [Skipped(tmp_path / f"f{i}.png", "damaged PNG file") for i in range(45)]
    text = skipped_files_text(2, skipped, limit=30)
    assert text.count("damaged PNG file") == 30 and text.endswith("… and 15 more")
    assert text.startswith("Opened 2 image(s). 45 file(s) were not opened:")


def test_opening_an_mr_says_it_is_not_a_radiograph_as_the_cli_does(window, qtbot, dialogs):
    from tests.dicom_data import real_dicom

    window.load_image_files([real_dicom("MR_small.dcm")])
    with qtbot.waitSignal(window.runner.done, timeout=30_000):
        pass
    qtbot.waitUntil(lambda: window.gallery.count() == 1, timeout=10_000)
    assert len(dialogs) == 1
    kind, title, text = dialogs[0]
    assert kind == "warning" and title == "Notes on the opened images"
    assert "MR_small.dcm: modality MR: not a radiograph" in text
