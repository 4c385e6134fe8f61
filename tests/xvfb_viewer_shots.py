"""Screenshots of the viewer in the real main window, for looking at (run under Xvfb):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/xvfb_viewer_shots.py OUT \
        RG1_UNCI.dcm RG3_UNCI.dcm

Opens each DICOM (pydicom-data's test files) and grabs the window at its DICOM default window,
at every preset, with the overlay off, and after switching from a tiny synthetic image zoomed
far in to a large one: OUT/<name>.png for each step. From the first file it also composes the
README's pictures: OUT/viewer_dicom_window.png (default window, pixel read-out),
OUT/viewer_presets.png (the viewer at four windows) and OUT/viewer_overlay.png (the chest
phantom standing in for a generated image, with its seed, in the overlay).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QEventLoop, QPointF, Qt, QTimer
from PySide6.QtGui import QMouseEvent, QPainter, QPixmap
from PySide6.QtWidgets import QApplication

from cxrgan_desktop.gui.shell.app import create_application


def settle(ms: int = 300) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def hover(viewer, x: float, y: float) -> None:
    """Move the mouse over image pixel (x, y), as a hand would."""
    viewport = viewer.graphics_view.viewport()
    point = viewer.graphics_view.mapFromScene(viewer.view_box.mapViewToScene(QPointF(x, y)))
    QApplication.sendEvent(viewport, QMouseEvent(
        QEvent.Type.MouseMove, QPointF(point), QPointF(viewport.mapToGlobal(point)),
        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))


def montage(tiles: list[QPixmap], columns: int, width: int) -> QPixmap:
    """Tiles side by side, ``columns`` a row, scaled to ``width`` pixels in all."""
    tile_w = width // columns
    scaled = [t.scaledToWidth(tile_w, Qt.TransformationMode.SmoothTransformation) for t in tiles]
    rows = -(-len(scaled) // columns)
    out = QPixmap(width, rows * scaled[0].height())
    out.fill(Qt.GlobalColor.black)
    painter = QPainter(out)
    for index, tile in enumerate(scaled):
        painter.drawPixmap((index % columns) * tile_w, (index // columns) * tile.height(), tile)
    painter.end()
    return out


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    from pydicom.data import get_testdata_file

    files = [Path(get_testdata_file(name, download=False)) for name in sys.argv[2:]]
    app = create_application(sys.argv[:1])
    from cxrgan_desktop.gui.shell.main_window import MainWindow
    from cxrgan_desktop.gui.viewer.gallery import GalleryEntry
    from cxrgan_desktop.imaging.png16 import write_png16

    window = MainWindow()
    window.resize(1500, 960)
    window.show()
    settle(800)

    def shoot(name: str) -> None:
        settle(250)
        QApplication.processEvents()
        window.screen().grabWindow(window.winId()).save(str(out / f"{name}.png"))

    viewer = window.viewer
    for number, path in enumerate(files):
        stem = path.stem.split("_")[0].lower()
        window.load_image_files([path])
        for _ in range(100):
            settle(100)
            if viewer.image() is not None and window.runner is not None \
                    and not window.runner.is_running():
                break
        settle(500)
        height, width = viewer.image().shape
        hover(viewer, width * 0.3, height * 0.4)  # a right lung field of a PA chest
        shoot(f"{stem}_default")
        tiles = {}
        for name in viewer.preset_names():
            viewer.apply_preset(name)
            shoot(f"{stem}_{name.split(':')[0].replace(' ', '_').replace('(', '')}")
            settle(100)
            tiles[name] = viewer.grab()
        if number == 0:
            viewer.reset()
            hover(viewer, width * 0.3, height * 0.4)
            shoot("viewer_dicom_window")
            chosen = [tiles[n] for n in tiles if n.startswith("DICOM default")][:1] + [
                tiles[n] for n in ("Lung", "Mediastinum", "Bone")]
            montage(chosen, 2, 1400).save(str(out / "viewer_presets.png"))
        viewer.reset()

    # a 16 px synthetic image zoomed far in, then a large image from the strip
    tiny = tempfile.mkdtemp()
    rng = np.random.default_rng(0)
    pixels = rng.random((16, 16)).astype(np.float32)
    tiny_path = Path(tiny) / "seed7_00000.png"
    write_png16(tiny_path, pixels)
    window.gallery.add_entry(GalleryEntry(tiny_path, "seed 7 #0", {
        "seed": 7, "index": 0, "model_name": "demo-pggan-16", "model_sha256": "0"}),
        pixels, select=True)
    settle(300)
    viewer.zoom_by(60)
    viewer.view_box.translateBy(x=5, y=-4)
    shoot("tiny_zoomed")
    window.gallery.step(-1)  # back to the last DICOM
    shoot("switched_to_large")
    viewer.toggle_overlay()
    shoot("overlay_off")
    viewer.toggle_overlay()

    # the overlay on a synthetic image: the chest phantom stands in for a generate
    from cxrgan_desktop.imaging.phantom.render import render_phantom

    chest = render_phantom(512, frozenset(), np.random.default_rng(7))
    chest_path = Path(tiny) / "seed7_00001.png"
    write_png16(chest_path, chest)
    window.gallery.add_entry(GalleryEntry(chest_path, "seed 7 #1", {
        "seed": 7, "index": 1, "model_name": "chest phantom", "model_sha256": "0"}),
        chest, select=True)
    settle(300)
    viewer.apply_preset("Lung")
    viewer.zoom_by(1.6)
    hover(viewer, 180, 240)
    shoot("viewer_overlay")
    window.close()
    app.quit()


if __name__ == "__main__":
    main()
