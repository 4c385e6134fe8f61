"""The placeholder window opens and lists models; the library imports without Qt."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")


def test_models_tab_lists_known_models(qtbot):
    from cxrgan_desktop.gui.panels.models import ModelLibrary

    library = ModelLibrary()
    qtbot.addWidget(library)
    names = [library.tree.topLevelItem(i).text(0)
             for i in range(library.tree.topLevelItemCount())]
    assert any("Segal" in name for name in names)
    assert "import-model" in library.hint.text()


def test_library_imports_without_qt():
    """No module outside gui/ may import Qt: import all of them with PySide6 blocked."""
    code = (
        "import sys, importlib, pkgutil\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph'):\n"
        "            raise ImportError('Qt blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import cxrgan_desktop\n"
        "for m in pkgutil.walk_packages(cxrgan_desktop.__path__, 'cxrgan_desktop.'):\n"
        "    if '.gui' not in m.name and not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.xvfb
def test_real_window_under_xvfb_screenshot(tmp_path):
    """The real application window on an X server (xcb), captured and checked."""
    if not shutil.which("xvfb-run"):
        pytest.skip("xvfb-run is not installed (apt-get install xvfb xauth)")
    from PIL import Image

    from tests.dicom_data import real_dicom

    shot = tmp_path / "main_window.png"
    script = Path(__file__).with_name("xvfb_screenshot.py")
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable,
                          str(script), str(shot), str(real_dicom("RG1_UNCI.dcm"))],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (1000, 1600)
    assert pixels.std() > 20  # a window with an image, not an empty screen
    saved = os.environ.get("CXRGAN_SCREENSHOT_DIR")
    if saved:  # keep it for looking at
        shutil.copy(shot, Path(saved) / shot.name)
