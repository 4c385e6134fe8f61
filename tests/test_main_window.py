"""The main window driven as a user would: generate, cancel, open files, bad files, settings."""

import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QFileDialog, QMessageBox

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.settings import load_settings
from cxrgan_desktop.engine.checkpoints import OutputAdapter, save_generator
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.gui.shell.main_window import MainWindow
from cxrgan_desktop.store import zoo
from tests.dicom_data import real_dicom


@pytest.fixture
def installed_model():
    torch.manual_seed(0)
    config = PGGANConfig(latent_size=16, channels=(32, 16, 16, 8, 8), image_channels=1)
    return save_generator(paths.models_dir() / "tiny.safetensors", Generator(config),
                          OutputAdapter(1, "signed"), "tiny")


@pytest.fixture
def window(installed_model, main_window):
    return main_window


def test_generate_fills_gallery_and_viewer(window, qtbot):
    panel = window.generate_panel
    assert panel.model_box.currentText() == "tiny"
    panel.count.setValue(3)
    panel.random_seed.setChecked(False)
    panel.seed.setValue(7)
    panel.generate_button.click()
    qtbot.waitUntil(lambda: window.gallery.count() == 3, timeout=30_000)
    qtbot.waitUntil(panel.generate_button.isEnabled, timeout=10_000)  # the job's done signal
    assert [e.title for e in window.gallery.entries()] == ["seed 7 #0", "seed 7 #1",
                                                           "seed 7 #2"]
    assert all(e.path.exists() for e in window.gallery.entries())
    assert panel.generate_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_cancel_stops_generation(window, qtbot):
    panel = window.generate_panel
    panel.count.setValue(500)
    panel.batch_size.setValue(1)
    panel.generate_button.click()
    runner = window.runner
    qtbot.waitUntil(lambda: window.gallery.count() >= 1, timeout=30_000)
    with qtbot.waitSignal(runner.cancelled, timeout=30_000):
        panel.cancel_button.click()
    qtbot.waitUntil(panel.generate_button.isEnabled, timeout=10_000)
    assert 1 <= window.gallery.count() < 500


def test_bad_model_file_gives_a_dialog(window, qtbot, tmp_path, monkeypatch, dialogs):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"definitely not a checkpoint")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(bad), ""))
    window.generate.open_model()
    with qtbot.waitSignal(window.runner.done, timeout=20_000):
        pass
    assert dialogs and dialogs[0][0] == "critical" and "broken.pth" in dialogs[0][2]


def test_open_dicom_and_skip_bad_files(window, qtbot, tmp_path, dialogs):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n nothing")
    window.load_image_files([real_dicom("RG3_UNCR.dcm"), junk])
    with qtbot.waitSignal(window.runner.done, timeout=20_000):
        pass
    qtbot.waitUntil(lambda: window.gallery.count() == 1, timeout=5_000)
    assert window.gallery.entries()[0].path.name == "RG3_UNCR.dcm"
    assert dialogs and dialogs[0][0] == "warning" and "junk.png" in dialogs[0][2]


def test_settings_persist_across_restarts(window, qtbot):
    window.generate_panel.count.setValue(9)
    window.resize(1111, 777)
    window.close()
    assert load_settings().generate_count == 9
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.generate_panel.count.value() == 9
    assert again.settings.window_geometry
    qtbot.waitUntil(lambda: not again._device_probe.is_running(), timeout=20_000)


def test_gallery_keeps_one_selection_and_steps(window, qtbot):
    import numpy as np
    from PIL import Image

    from cxrgan_desktop.gui.viewer.gallery import GalleryEntry
    from cxrgan_desktop.imaging.png16 import write_png16

    for i in range(3):
        path = paths.data_dir() / f"g{i}.png"
        write_png16(path, np.full((16, 16), i / 3, np.float32))
        window.gallery.add_entry(GalleryEntry(path, f"g{i}"), np.zeros((16, 16)), select=True)
    assert [e.title for e in window.gallery.selected_entries()] == ["g2"]
    window.gallery.step(-1)
    assert [e.title for e in window.gallery.selected_entries()] == ["g1"]
    expected = np.asarray(Image.open(paths.data_dir() / "g1.png"))  # read apart from the app
    qtbot.waitUntil(lambda: window.viewer.image() is not None
                    and np.array_equal(window.viewer.image(), expected), timeout=10_000)


def test_preferences_reach_the_viewer_and_persist(window, qtbot):
    from cxrgan_desktop.core.settings import ViewerPreferences

    window.settings.viewer = ViewerPreferences(window_button="right", drag_right_widens=False)
    window.apply_viewer_preferences()
    assert window.viewer.preferences.window_button == "right"
    assert window.viewer.preferences.drag.width_sign == -1
    window.close()
    assert load_settings().viewer.window_button == "right"


def test_models_tab_describes_and_removes_an_installed_model(window, qtbot, installed_model,
                                                             monkeypatch):
    library = window.library
    names = [library.tree.topLevelItem(i).text(0) for i in range(library.tree.topLevelItemCount())]
    row = names.index("tiny")
    library.tree.setCurrentItem(library.tree.topLevelItem(row))
    qtbot.waitUntil(lambda: "SHA-256" in library.details.toPlainText(), timeout=10_000)
    assert "latent" in library.details.toPlainText().lower()
    assert library.remove_button.isEnabled()
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    library.remove_button.click()
    assert not installed_model.exists()
    box = window.generate_panel.model_box  # only the bundled demo is left, and it stays
    assert [box.itemText(i) for i in range(box.count())] == [zoo.DEMO_MODEL]
    assert not window.generate_panel.no_model_hint.isVisibleTo(window.generate_panel)


def test_export_selected_writes_files(window, qtbot, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QInputDialog

    panel = window.generate_panel
    panel.count.setValue(2)
    panel.generate_button.click()
    qtbot.waitUntil(lambda: window.gallery.count() == 2, timeout=30_000)
    qtbot.waitUntil(panel.generate_button.isEnabled, timeout=10_000)
    window.gallery.selectAll()
    monkeypatch.setattr(QInputDialog, "getItem",
                        lambda *a, **k: (a[3][2] if len(a) > 3 else k["items"][2], True))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    window.export_selected()
    qtbot.waitUntil(lambda: len(list(tmp_path.glob("*.dcm"))) == 2, timeout=20_000)


def test_dropping_files_opens_them(window, qtbot, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(real_dicom("RG3_UNCR.dcm")))])
    event = QDropEvent(QPointF(100, 100), Qt.DropAction.CopyAction, mime,
                       Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: window.gallery.count() == 1, timeout=20_000)
    assert window.gallery.entries()[0].path.name == "RG3_UNCR.dcm"


def test_the_window_fits_a_laptop_screen_and_side_by_side_pages_scroll(main_window):
    """A page of three viewers once made the window at least 1900 px wide (a stacked widget
    is as wide as its widest page); the side-by-side pages now scroll instead."""
    win = main_window
    assert win.minimumSizeHint().width() <= 1366
    assert win.centre.minimumSizeHint().width() <= win.viewer.minimumSizeHint().width() + 4
    for page in (win.compare, win.audit_pair, win.projection_pair, win.viewer):
        win.centre.setCurrentWidget(page)
        assert win.centre.currentWidget() is page
        assert page.isVisibleTo(win)
