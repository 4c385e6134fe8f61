"""``cxrgan-desktop``: start the Qt application."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cxrgan_desktop import __version__, runtime


def create_application(argv: Sequence[str]):
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(list(argv))
    app.setApplicationName("cxrgan-desktop")
    app.setOrganizationName("cxrgan-desktop")
    app.setApplicationVersion(__version__)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    runtime.configure_before_torch()
    argv = list(sys.argv if argv is None else argv)
    app = create_application(argv)
    from cxrgan_desktop.gui.main_window import MainWindow

    window = MainWindow()
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
