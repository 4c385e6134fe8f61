import sys

from cxrgan_desktop.cli import main

sys.exit(main())
