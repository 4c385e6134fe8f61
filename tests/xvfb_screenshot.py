"""Run under Xvfb by tests/test_gui_smoke.py: open the real main window with a radiograph,
grab the X screen through Qt and save it as PNG (argv[1])."""

import sys
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication

from cxrgan_desktop.gui.shell.app import create_application


def main() -> None:
    out = Path(sys.argv[1])
    images = [Path(p) for p in sys.argv[2:]]
    app = create_application(sys.argv[:1])
    from cxrgan_desktop.gui.shell.main_window import MainWindow

    window = MainWindow()
    window.show()
    if images:
        QTimer.singleShot(200, lambda: window.load_image_files(images))

    def shoot() -> None:
        QGuiApplication.primaryScreen().grabWindow(0).save(str(out))
        window.close()
        app.quit()

    QTimer.singleShot(5000, shoot)
    app.exec()


if __name__ == "__main__":
    main()
