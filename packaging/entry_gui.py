"""Frozen entry point of the window (PyInstaller runs this file as __main__)."""

import sys

from cxrgan_desktop.gui.shell.app import main

sys.exit(main())
