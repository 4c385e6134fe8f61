"""Render the application icon (resources/icons/cxrgan-desktop.svg) to the PNG
sizes desktops and PyInstaller ask for: resources/icons/cxrgan-desktop-<N>.png.
Run after changing the SVG:  .venv/bin/python packaging/make_icons.py"""

import os
import sys
from pathlib import Path

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication(sys.argv[:1])  # noqa: F841 (needed for painting)
    renderer = QSvgRenderer(str(ROOT / "resources" / "icons" / "cxrgan-desktop.svg"))
    if not renderer.isValid():
        print("the SVG icon could not be read", file=sys.stderr)
        return 1
    out = ROOT / "resources" / "icons"
    out.mkdir(exist_ok=True)
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        image.save(str(out / f"cxrgan-desktop-{size}.png"))
    print(f"wrote {len(SIZES)} icons to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
