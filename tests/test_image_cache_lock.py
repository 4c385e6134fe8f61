"""Two builders of one image cache: the second waits for the first, then uses its cache."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from cxrgan_desktop.core.jobs import Cancelled
from cxrgan_desktop.core.output_lock import output_lock
from cxrgan_desktop.engine.training.dataset import DatasetSpec
from cxrgan_desktop.engine.training.image_cache import build_cache


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for k in range(4):
        Image.fromarray((rng.random((16, 16)) * 65535).astype(np.uint16)).save(
            images / f"{k}.png")
    return images


def test_a_second_builder_waits_for_the_first_and_finds_its_cache(folder, tmp_path):
    cache_dir = tmp_path / "cache"
    holding, waiting, release = threading.Event(), threading.Event(), threading.Event()

    def other_builder():  # holds the folder's lock as a building process would
        with output_lock(cache_dir, "image cache"):
            holding.set()
            release.wait(60)

    other = threading.Thread(target=other_builder)
    other.start()
    holding.wait(60)
    messages = []

    def progress(fraction, message=""):
        messages.append(message)
        if message.startswith("waiting"):
            waiting.set()
            release.set()  # the other builder finishes once we are seen waiting

    cache = build_cache(DatasetSpec(folder), cache_dir, 16, progress=progress)
    other.join(60)
    assert waiting.is_set() and "process" in messages[0]
    assert cache.count == 4
    with Image.open(folder / "2.png") as im:
        expected = np.asarray(im, dtype=np.float64) / 65535
    stored = cache.array(16)[list(cache.files).index("2.png")] / 65535
    assert np.abs(stored - expected).max() <= 1 / 65535


def test_cancel_while_waiting_stops_the_wait(folder, tmp_path):
    cache_dir = tmp_path / "cache"
    cancel = threading.Event()

    def progress(fraction, message=""):
        if message.startswith("waiting"):
            cancel.set()

    with output_lock(cache_dir, "image cache"), pytest.raises(Cancelled):
        build_cache(DatasetSpec(folder), cache_dir, 16, progress=progress, cancel=cancel)
