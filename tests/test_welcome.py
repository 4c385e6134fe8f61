"""The first-run welcome: shown while no model of the user's is installed (the bundled demo
works meanwhile, and the welcome says what it is), installs the paper's generator
from its (loopback-served) archive or a local file, and remembers whether to show itself."""

from __future__ import annotations

from cxrgan_desktop.core.settings import Settings
from cxrgan_desktop.gui.shell.main_window import MainWindow
from cxrgan_desktop.gui.shell.welcome import PAPER_CARD, WelcomeDialog
from cxrgan_desktop.store import zoo


def _window(qtbot) -> MainWindow:
    window = MainWindow(Settings())
    qtbot.addWidget(window)
    return window


def test_the_welcome_downloads_the_paper_model_into_the_window(qtbot, archive_server):
    url, _ = archive_server
    window = _window(qtbot)
    window.maybe_show_welcome()
    dialog = window.welcome
    assert dialog.isVisible() and "No generator of your own" in dialog.intro.text()
    assert zoo.DEMO_MODEL in dialog.intro.text() and "not clinical" in dialog.intro.text()
    names = [window.generate_panel.model_box.itemText(i)
             for i in range(window.generate_panel.model_box.count())]
    assert names == [zoo.DEMO_MODEL]  # the window opens on the demo: Generate works
    assert window.generate_panel.generate_button.isEnabled()
    assert "Please cite" in dialog.intro.text()
    dialog.download_url = f"{url}/good.zip"
    with qtbot.waitSignal(dialog.installed, timeout=60_000):
        dialog.download_button.click()
    qtbot.waitUntil(lambda: not dialog.is_running())
    assert "Installed segal2020-pggan-cxr14" in dialog.result.text()
    assert "SHA-256" in dialog.result.text()
    assert PAPER_CARD in dialog.intro.text()  # now listed as installed
    names = [window.generate_panel.model_box.itemText(i)
             for i in range(window.generate_panel.model_box.count())]
    assert PAPER_CARD in names
    dialog.close()
    window.welcome = None
    window.maybe_show_welcome()  # a model is installed: no welcome at start-up
    assert window.welcome is None


def test_a_failed_download_says_why_and_the_checkbox_is_remembered(qtbot, archive_server):
    url, _ = archive_server
    window = _window(qtbot)
    dialog = window.show_welcome()
    dialog.download_url = f"{url}/missing.zip"
    dialog.download_button.click()
    qtbot.waitUntil(lambda: dialog.runner is not None and not dialog.is_running(),
                    timeout=60_000)
    assert "Not installed" in dialog.result.text() and "Not Found" in dialog.result.text()
    assert not zoo.user_models()
    dialog.show_at_start.setChecked(False)
    assert window.settings.show_welcome is False
    dialog.close()
    window.welcome = None
    window.maybe_show_welcome()
    assert window.welcome is None


def test_importing_a_file_from_the_welcome(qtbot, tmp_path, paper_file):
    source = tmp_path / "Final_Full_Model.pth"
    source.write_bytes(paper_file)
    dialog = WelcomeDialog(True)
    qtbot.addWidget(dialog)
    with qtbot.waitSignal(dialog.installed, timeout=60_000) as installed:
        dialog.import_file(source)
    assert installed.args[0].name == "Final_Full_Model"
    qtbot.waitUntil(lambda: not dialog.is_running())
    assert [m.name for m in zoo.user_models()] == ["Final_Full_Model"]


def test_no_welcome_over_files_given_on_the_command_line_and_it_is_never_modal(qtbot,
                                                                              tmp_path):
    import numpy as np

    from cxrgan_desktop.gui.shell.app import open_main_window
    from cxrgan_desktop.imaging.png16 import write_png16

    image = tmp_path / "chest.png"
    write_png16(image, np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64))
    with_files = open_main_window([image])
    qtbot.addWidget(with_files)
    assert getattr(with_files, "welcome", None) is None  # no model, but files were given
    qtbot.waitUntil(lambda: with_files.gallery.count() == 1, timeout=20_000)
    without = open_main_window([])
    qtbot.addWidget(without)
    assert getattr(without, "welcome", None) is not None and without.welcome.isVisible()
    assert not without.welcome.isModal()
    without.welcome.close()
