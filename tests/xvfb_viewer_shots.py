"""Screenshots of the viewer in the real main window, for looking at (run under Xvfb):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/xvfb_viewer_shots.py OUT \
        RG1_UNCI.dcm RG3_UNCI.dcm

Opens each CR chest (pydicom-data's test files) and grabs the window at its DICOM default
window, at every preset, with the overlay off, and after switching from a tiny synthetic image
zoomed far in to a large one. OUT/<name>.png for each step.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from cxrgan_desktop.gui.app import create_application


def settle(ms: int = 300) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    from pydicom.data import get_testdata_file

    files = [Path(get_testdata_file(name, download=False)) for name in sys.argv[2:]]
    app = create_application(sys.argv[:1])
    from cxrgan_desktop.gui.gallery import GalleryEntry
    from cxrgan_desktop.gui.main_window import MainWindow
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
    for path in files:
        stem = path.stem.split("_")[0].lower()
        window.load_image_files([path])
        for _ in range(100):
            settle(100)
            if viewer.image() is not None and window.runner is not None \
                    and not window.runner.is_running():
                break
        settle(500)
        shoot(f"{stem}_default")
        for name in viewer.preset_names():
            viewer.apply_preset(name)
            shoot(f"{stem}_{name.split(':')[0].replace(' ', '_').replace('(', '')}")
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
    window.close()
    app.quit()


if __name__ == "__main__":
    main()
