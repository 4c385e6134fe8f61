"""Frozen entry point of the command line (PyInstaller runs this file as __main__)."""

import sys

from cxrgan_desktop.cli import main

sys.exit(main())
