"""Viewer speed for a 1024 x 1024 16-bit image, offscreen, one full repaint every time.

Prints one JSON object with median and p90 milliseconds of:
- window_change_fit / window_change_1to1: set a new Window Center / Width on the viewer and
  repaint (the whole path: byte table from apply_window, indexing, ImageItem, paint), with
  the image fitted to an 880 px view (scaled, smoothed) and at 1:1;
- drag_burst_10: ten window requests as a fast drag sends them, then one repaint (the
  requests coalesce into one render);
- switch_image: show the next image keeping window and zoom (quantise, histogram, render);
- strategy_uint8_lut (the viewer's choice) against strategy_uint16_imageitem_lut (uint16
  data in the ImageItem, levels + a 65536-entry lookup table per window), both on bare
  ImageItems in the same view, and the naive baseline: ImageItem.setImage on the raw float
  image with autoLevels, as pyqtgraph examples do.

Each timed step ends with viewport().update() and QApplication.processEvents(), which runs the
viewer's pending render and one paint of the view, as the event loop would; the number of
image paints per step is counted and reported (1.0 means every step was drawn exactly once;
repaint() followed by processEvents() would draw twice, as the scene posts its own update).

    QT_QPA_PLATFORM=offscreen python tests/benchmarks/bench_viewer.py [--repeats 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pyqtgraph as pg
import PySide6
from PySide6.QtWidgets import QApplication

from cxrgan_desktop.gui.viewer.viewer import ImageViewBox, ImageViewer
from cxrgan_desktop.imaging import display
from cxrgan_desktop.imaging.windowing import Window

SIZE = 1024


def sample_images(count: int) -> list[np.ndarray]:
    """Radiograph-like [0, 1] float32 images: smooth structure plus noise."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = 0.5 + 0.3 * np.sin(6 * rows) * np.cos(4 * cols)
    return [np.clip(base + 0.05 * rng.standard_normal((SIZE, SIZE)), 0, 1).astype(np.float32)
            for _ in range(count)]


def summary(times_s: list[float]) -> dict[str, float]:
    ms = np.asarray(times_s) * 1e3
    return {"median_ms": round(float(np.median(ms)), 2),
            "p90_ms": round(float(np.percentile(ms, 90)), 2)}


class PaintCounter:
    """Counts paints of an ImageItem (an instance attribute overrides the virtual)."""

    def __init__(self, item: pg.ImageItem) -> None:
        self.count = 0
        original = item.paint

        def paint(*args):
            self.count += 1
            return original(*args)

        item.paint = paint


def timed(repeats: int, step, repaint, counter: PaintCounter) -> dict[str, float]:
    times = []
    for index in range(repeats + 3):
        if index == 3:  # after warm-up
            counter.count = 0
        start = time.perf_counter()
        step(index)
        repaint()
        if index >= 3:
            times.append(time.perf_counter() - start)
    return {**summary(times), "paints_per_step": round(counter.count / repeats, 2)}


def bare_view(app: QApplication) -> tuple[pg.GraphicsView, pg.ImageItem]:
    view = pg.GraphicsView(background="#000000")
    box = ImageViewBox()
    view.setCentralItem(box)
    item = pg.ImageItem(axisOrder="row-major")
    box.addItem(item)
    view.resize(880, 880)
    view.show()
    box.setRange(xRange=(0, SIZE), yRange=(0, SIZE), padding=0)
    app.processEvents()
    return view, item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed runs per figure (40)")
    args = parser.parse_args()
    app = pg.mkQApp()
    images = sample_images(4)
    windows = [Window(20000 + 150 * i, 12000 + 200 * (i % 7) + 1) for i in range(args.repeats + 3)]

    viewer = ImageViewer()
    viewer.resize(880, 1000)
    viewer.show()
    viewer.set_image(images[0])
    app.processEvents()

    viewer_paints = PaintCounter(viewer.image_item)

    def repaint_viewer() -> None:
        viewer.graphics_view.viewport().update()
        QApplication.processEvents()

    results: dict[str, object] = {}
    viewer.fit()
    results["window_change_fit"] = timed(
        args.repeats, lambda i: viewer.set_window(windows[i]), repaint_viewer,
        viewer_paints)
    viewer.one_to_one()
    results["window_change_1to1"] = timed(
        args.repeats, lambda i: viewer.set_window(windows[-1 - i]), repaint_viewer,
        viewer_paints)
    viewer.fit()

    def burst(i: int) -> None:
        for k in range(10):
            viewer.set_window(Window(15000 + 50 * k + 700 * i, 9000 + 30 * k))

    results["drag_burst_10"] = timed(args.repeats, burst, repaint_viewer, viewer_paints)
    results["switch_image"] = timed(
        args.repeats, lambda i: viewer.set_image(images[i % 4], reset_view=False),
        repaint_viewer, viewer_paints)
    viewer.close()

    view, item = bare_view(app)

    bare_paints = PaintCounter(item)

    def repaint_bare() -> None:
        view.viewport().update()
        QApplication.processEvents()

    stored = display.to_stored(images[0])

    def uint8_lut(i: int) -> None:
        item.setImage(display.display_bytes(stored, windows[i]), autoLevels=False)

    results["strategy_uint8_lut"] = timed(args.repeats, uint8_lut, repaint_bare, bare_paints)
    item.setImage(stored, autoLevels=False, levels=(0, 65535))

    def uint16_imageitem(i: int) -> None:
        item.setLookupTable(display.window_lut(windows[i]), update=False)
        item.setLevels((0, 65535))

    results["strategy_uint16_imageitem_lut"] = timed(args.repeats, uint16_imageitem,
                                                     repaint_bare, bare_paints)
    item.setLookupTable(None, update=False)
    item.setImage(images[0], autoLevels=True)
    results["baseline_naive_float_autolevels"] = timed(
        args.repeats, lambda i: item.setImage(images[i % 4], autoLevels=True), repaint_bare,
        bare_paints)
    view.close()

    parts = {}
    lut_times, take_times = [], []
    for window in windows:
        start = time.perf_counter()
        lut = display.window_lut(window)
        lut_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        display.display_bytes(stored, window, lut=lut)
        take_times.append(time.perf_counter() - start)
    parts["window_lut_65536"] = summary(lut_times)
    parts["index_1024x1024"] = summary(take_times)
    results["parts"] = parts
    results["goal_ms"] = 16
    results["setup"] = {
        "image": f"{SIZE}x{SIZE} uint16 stored values", "view_px": 880,
        "repeats": args.repeats, "cpus": os.cpu_count(), "platform": platform.platform(),
        "qpa": os.environ.get("QT_QPA_PLATFORM"), "python": platform.python_version(),
        "pyside6": PySide6.__version__, "pyqtgraph": pg.__version__,
        "numpy": np.__version__, "statistics": "median, p90 of repeats after 3 warm-ups",
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
