"""Viewer speed for a 1024 x 1024 16-bit image, offscreen, against pyqtgraph's own levels route.

The baseline is what a user of plain pyqtgraph does to window an image: put the image in an
ImageItem once and call ``ImageItem.setLevels((low, high))`` for every new window, or
``ImageItem.setImage(image, levels=(low, high))`` for a new image (pyqtgraph folds the levels
of a uint16 image into one lookup table, and rescales a float image). It is timed in the same
run, in a bare pyqtgraph view of the same size with the same smoothing as the viewer's, on
the same image and windows, and every figure of ours is reported with its ratio to it
(``speedup_vs_pyqtgraph`` = baseline median / our median; above 1, ours is faster).

Prints one JSON object; each of its first four entries is one step, timed for every route
named in it with the routes taken in turn at every repeat (interleaved, so that a change of
load on a shared machine falls on all of them alike):
- ``window_change_fit``: a new Window Center / Width with the image fitted to the view
  (scaled, smoothed). ``viewer``: the application's ImageViewer, the whole path (byte table
  from apply_window, indexing, ImageItem, the window fields, histogram marks, overlay,
  paint); ``bare_route``: our rendering route alone on a bare view (``display_bytes``, then
  ``setImage`` of the uint8 bytes); ``pyqtgraph_levels_uint16``: ``setLevels`` on the uint16
  stored values, the data the viewer holds (the baseline); ``pyqtgraph_levels_float32``: the
  same on the float32 [0, 1] image;
- ``window_change_1to1``: the same at 1:1, viewer against ``setLevels`` on uint16;
- ``drag_burst_10``: ten window requests as a fast drag sends them, then one paint (the
  viewer coalesces them into one render; pyqtgraph renders at paint time, so ten
  ``setLevels`` coalesce too);
- ``switch_image``: the next float image keeping window and zoom (the viewer quantises,
  histograms and renders), against ``setImage(float image, levels=...)``;
- ``agreement``: the grey levels pyqtgraph's levels route draws against the DICOM VOI
  function's (our bytes) for one window: they are not the same function to the last level.

Each row carries ``speedup_vs_<baseline>`` = the baseline's median / the row's median (above
1: faster than plain pyqtgraph). Each timed step ends with viewport().update() and
QApplication.processEvents(), which runs the pending render and one paint of the view, as
the event loop would; the number of image paints per step is counted and reported (1.0 means
every step was drawn exactly once).

    QT_QPA_PLATFORM=offscreen python tests/benchmarks/bench_viewer.py [--repeats 40]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pyqtgraph as pg
import PySide6
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication

from cxrgan_desktop.gui.viewer.viewer import ImageViewBox, ImageViewer
from cxrgan_desktop.imaging import display
from cxrgan_desktop.imaging.windowing import Window

SIZE = 1024
STORED_MAX = display.STORED_MAX


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


class Subject:
    """One view under test: how to repaint it and its image item's paint counter."""

    def __init__(self, view: pg.GraphicsView, item: pg.ImageItem) -> None:
        self.view, self.item = view, item
        self.paints = PaintCounter(item)

    def repaint(self, painted_before: int) -> None:
        """Run the event loop until the step's change has been painted, then one more pass
        for anything that paint posted (a second paint is the step's own cost, not the next
        route's)."""
        for _ in range(50):
            QApplication.processEvents()
            if self.paints.count > painted_before:
                break
        QApplication.processEvents()


def interleaved(repeats: int, runs: dict[str, tuple[Subject, Callable[[int], None]]]
                ) -> dict[str, dict[str, float]]:
    """Time each run's step + one paint, taking the runs in turn at every index, so that a
    change of load on the shared machine falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for index in range(repeats + 3):
        for name, (subject, step) in runs.items():
            if index == 3:  # after warm-up
                subject.paints.count = 0
            painted = subject.paints.count
            start = time.perf_counter()
            step(index)
            subject.repaint(painted)
            if index >= 3:
                times[name].append(time.perf_counter() - start)
    return {name: {**summary(times[name]),
                   "paints_per_step": round(subject.paints.count / repeats, 2)}
            for name, (subject, _) in runs.items()}


def levels(window: Window, scale: float = 1.0) -> tuple[float, float]:
    """pyqtgraph levels with the VOI function's ramp: ``low`` maps to black and ``high`` to
    white (in stored units, or in [0, 1] with ``scale = 1 / 65535``)."""
    return window.low * scale, window.high * scale


class BareView(Subject):
    """A plain pyqtgraph view and ImageItem the size of the viewer's, smoothed when the
    image is shrunk, as the viewer's is."""

    def __init__(self, app: QApplication, width: int, height: int) -> None:
        self.app = app
        view = pg.GraphicsView(background="#000000")
        self.box = ImageViewBox()
        view.setCentralItem(self.box)
        item = pg.ImageItem(axisOrder="row-major")
        self.box.addItem(item)
        view.resize(width, height)
        view.show()
        super().__init__(view, item)
        app.processEvents()

    def fit(self) -> None:
        self.box.setRange(xRange=(0, SIZE), yRange=(0, SIZE), padding=0)
        self.view.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.app.processEvents()

    def one_to_one(self) -> None:
        ratio = self.view.devicePixelRatioF()
        half_w, half_h = self.box.width() * ratio / 2, self.box.height() * ratio / 2
        self.box.setRange(xRange=(SIZE / 2 - half_w, SIZE / 2 + half_w),
                          yRange=(SIZE / 2 - half_h, SIZE / 2 + half_h), padding=0)
        self.view.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.app.processEvents()


def ratios(rows: dict[str, dict[str, float]], baseline: str) -> dict[str, dict[str, float]]:
    """Every row with ``speedup_vs_<baseline>`` = baseline median / its median."""
    base = rows[baseline]["median_ms"]
    return {name: row if name == baseline else
            {**row, f"speedup_vs_{baseline}": round(base / row["median_ms"], 2)}
            for name, row in rows.items()}


def agreement(stored: np.ndarray, image01: np.ndarray, window: Window,
              item: pg.ImageItem) -> dict[str, object]:
    """Grey levels pyqtgraph's levels route draws against the VOI function's bytes."""
    ours = display.display_bytes(stored, window).astype(np.int16)
    out: dict[str, object] = {"window": {"center": window.center, "width": window.width}}
    for name, data, scale in (("uint16_levels", stored, 1.0),
                              ("float32_levels", image01, 1.0 / STORED_MAX)):
        item.setImage(data, levels=levels(window, scale))
        item.render()
        drawn = pg.functions.ndarray_from_qimage(item.qimage).astype(np.int16)
        diff = np.abs(drawn - ours)
        out[name] = {"max_abs_grey_levels": int(diff.max()),
                     "fraction_of_pixels_differing": round(float((diff > 0).mean()), 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed runs per figure (40)")
    args = parser.parse_args()
    app = pg.mkQApp()
    images = sample_images(4)
    stored = display.to_stored(images[0])
    windows = [Window(20000 + 150 * i, 12000 + 200 * (i % 7) + 1) for i in range(args.repeats + 3)]
    to_unit = 1.0 / STORED_MAX

    def bursts(i: int) -> list[Window]:
        return [Window(15000 + 50 * k + 700 * i, 9000 + 30 * k) for k in range(10)]

    viewer = ImageViewer()
    viewer.resize(880, 1000)
    viewer.show()
    viewer.set_image(images[0])
    app.processEvents()
    ours = Subject(viewer.graphics_view, viewer.image_item)
    size = viewer.graphics_view.size()
    uint16, float32, route = (BareView(app, size.width(), size.height()) for _ in range(3))
    uint16.item.setImage(stored, levels=levels(windows[0]))
    float32.item.setImage(images[0], levels=levels(windows[0], to_unit))
    route.item.setImage(display.display_bytes(stored, windows[0]), autoLevels=False)

    def fit() -> None:
        viewer.fit()
        for bare in (uint16, float32, route):
            bare.fit()

    def viewer_burst(i: int) -> None:
        for window in bursts(i):
            viewer.set_window(window)

    def levels_burst(i: int) -> None:
        for window in bursts(i):
            uint16.item.setLevels(levels(window))

    def switch(i: int) -> None:  # the window stays, as in the viewer's switch
        float32.item.setImage(images[i % 4], levels=levels(windows[-1], to_unit))

    def our_bytes(i: int) -> None:
        route.item.setImage(display.display_bytes(stored, windows[i]), autoLevels=False)

    results: dict[str, dict] = {}
    fit()
    results["window_change_fit"] = ratios(interleaved(args.repeats, {
        "viewer": (ours, lambda i: viewer.set_window(windows[i])),
        "bare_route": (route, our_bytes),
        "pyqtgraph_levels_uint16": (uint16, lambda i: uint16.item.setLevels(levels(windows[i]))),
        "pyqtgraph_levels_float32": (float32, lambda i: float32.item.setLevels(
            levels(windows[i], to_unit))),
    }), "pyqtgraph_levels_uint16")
    viewer.one_to_one()
    uint16.one_to_one()
    app.processEvents()
    results["window_change_1to1"] = ratios(interleaved(args.repeats, {
        "viewer": (ours, lambda i: viewer.set_window(windows[-1 - i])),
        "pyqtgraph_levels_uint16": (uint16, lambda i: uint16.item.setLevels(
            levels(windows[-1 - i]))),
    }), "pyqtgraph_levels_uint16")
    fit()
    results["drag_burst_10"] = ratios(interleaved(args.repeats, {
        "viewer": (ours, viewer_burst),
        "pyqtgraph_levels_uint16": (uint16, levels_burst),
    }), "pyqtgraph_levels_uint16")
    float32.item.setImage(images[0], levels=levels(windows[-1], to_unit))
    results["switch_image"] = ratios(interleaved(args.repeats, {
        "viewer": (ours, lambda i: viewer.set_image(images[i % 4], reset_view=False)),
        "pyqtgraph_set_image_levels_float32": (float32, switch),
    }), "pyqtgraph_set_image_levels_float32")
    results["agreement"] = agreement(stored, images[0], windows[0], uint16.item)
    viewer.close()
    for bare in (uint16, float32, route):
        bare.view.close()

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
        "image": f"{SIZE}x{SIZE}, float32 [0, 1] -> uint16 stored values",
        "view_px": [size.width(), size.height()],
        "repeats": args.repeats, "cpus": os.cpu_count(), "platform": platform.platform(),
        "load_average_before": [round(v, 2) for v in os.getloadavg()],
        "qpa": os.environ.get("QT_QPA_PLATFORM"), "python": platform.python_version(),
        "pyside6": PySide6.__version__, "pyqtgraph": pg.__version__,
        "numpy": np.__version__,
        "statistics": "median, p90 of repeats after 3 warm-ups; runs of a row interleaved",
        "ratio": "speedup_vs_X = X's median / this row's median (above 1: faster than X)",
    }
    print(json.dumps(results, indent=2))

if __name__ == "__main__":
    main()
