"""The placeholder window opens and lists models; the library imports without Qt."""

import shutil
import subprocess
import sys

import pytest

pytest.importorskip("pytestqt")


def test_main_window_lists_known_models(qtbot):
    from cxrgan_desktop.gui.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    names = [window.library.topLevelItem(i).text(0)
             for i in range(window.library.topLevelItemCount())]
    assert any("Segal" in name for name in names)
    assert "import-model" in window.welcome.text()


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
    if not shutil.which("xvfb-run") or not shutil.which("xwd"):
        pytest.skip("xvfb-run or xwd is not installed (apt-get install xvfb x11-apps)")
    shot = tmp_path / "window.xwd"
    script = (f"{sys.executable} -m cxrgan_desktop.gui.app & sleep 6; "
              f"xwd -root -silent > {shot}; kill %1")
    env_run = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", "sh", "-c", script],
                             capture_output=True, text=True, timeout=120,
                             env={**__import__("os").environ, "QT_QPA_PLATFORM": "xcb"})
    assert shot.exists() and shot.stat().st_size > 1_000_000, env_run.stderr

