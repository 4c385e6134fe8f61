"""``cxrgan-desktop``: start the Qt application."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cxrgan_desktop import __version__
from cxrgan_desktop.core import runtime


def create_application(argv: Sequence[str]):
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(list(argv))
    app.setApplicationName("cxrgan-desktop")
    app.setOrganizationName("cxrgan-desktop")
    app.setApplicationVersion(__version__)
    from PySide6.QtGui import QIcon

    from cxrgan_desktop.core.shipped import resource_path

    app.setWindowIcon(QIcon(str(resource_path("icons", "cxrgan-desktop.svg"))))
    return app


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cxrgan-desktop", description="Synthetic chest radiographs: generate, view, "
        "measure and run blinded reader studies.")
    parser.add_argument("images", nargs="*", type=Path, help="images to open (DICOM, PNG, "
                        "JPEG, TIFF), as the desktop's Open With passes them")
    parser.add_argument("--study", type=Path, metavar="FILE.cxrstudy",
                        help="open a reader study in reader mode only (for the radiologist "
                        "taking it): no other windows")
    parser.add_argument("--windowed", action="store_true",
                        help="with --study: start in a window, not full screen")
    parser.add_argument("--self-test", type=Path, metavar="OUT.png",
                        help="start the window, render one image from --model (default: "
                        "the first installed or bundled model) into OUT.png and exit: 0 when "
                        "it was written (checks an installation or a bundle)")
    parser.add_argument("--model", help="with --self-test: a model file or installed name")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args, _qt_arguments = parser.parse_known_args(list(argv)[1:])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    runtime.configure_before_torch()
    argv = list(sys.argv if argv is None else argv)
    args = parse_arguments(argv)
    app = create_application(argv)
    if args.self_test is not None:
        from cxrgan_desktop.gui.shell.self_test import run_self_test

        return run_self_test(app, args.self_test, args.model)
    if args.study is not None:
        from cxrgan_desktop.gui.panels.study_reader import open_reader_study

        window = open_reader_study(args.study, full_screen=not args.windowed)
        return app.exec() if window is not None else 1
    window = open_main_window(args.images)  # kept alive while the app runs
    return app.exec()


def open_main_window(images: Sequence[Path] = ()):
    """The workstation window, with the files given on the command line opened; the welcome
    shows only when none were given (the user came to see those, not a welcome)."""
    from cxrgan_desktop.gui.shell.main_window import MainWindow

    window = MainWindow()
    window.show()
    if images:
        window.load_image_files(list(images))
    else:
        window.maybe_show_welcome()
    return window


if __name__ == "__main__":
    sys.exit(main())
