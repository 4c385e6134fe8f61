"""Issue 19, item 5: models and classifiers installed by the command line while the window is
open appear in its lists (a watch on the folders, no restart)."""

import pytest
import torch

pytest.importorskip("pytestqt")

from cxrgan_desktop.core import paths
from cxrgan_desktop.engine.checkpoints import OutputAdapter, save_generator
from cxrgan_desktop.engine.classifier.files import save_classifier
from cxrgan_desktop.engine.classifier.installed import classifiers_dir
from cxrgan_desktop.engine.classifier.model import ClassifierSpec, PathologyClassifier
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.gui.shell.model_watcher import ModelFolderWatcher


def _tiny_generator(path):
    torch.manual_seed(0)
    return save_generator(path, Generator(PGGANConfig(latent_size=16, channels=(16, 8))),
                          OutputAdapter(), path.stem)


def test_a_model_written_by_another_process_appears_in_every_list(qtbot, main_window):
    window = main_window
    assert window.generate_panel.model_box.findText("late") < 0
    assert not paths.models_dir().exists()  # a fresh install: the folder comes later
    _tiny_generator(paths.models_dir() / "late.safetensors")
    qtbot.waitUntil(lambda: window.generate_panel.model_box.findText("late") >= 0,
                    timeout=15_000)
    names = [window.library.tree.topLevelItem(i).text(0)
             for i in range(window.library.tree.topLevelItemCount())]
    assert "late" in names
    assert window.fid_panel.fake.model.findText("late") >= 0

    save_classifier(classifiers_dir() / "reader.safetensors", PathologyClassifier(
        ClassifierSpec("densenet-small", ("Effusion",), 32)).eval(), "reader")
    qtbot.waitUntil(lambda: window.lco_panel.classifier_box.findText("reader") >= 0,
                    timeout=15_000)
    box = window.lco_panel.classifier_box  # the bundled demo classifier stays selected
    box.setCurrentIndex(box.findText("reader"))
    assert list(window.lco_panel.choices) == ["Effusion"]


def test_bursts_are_gathered_into_one_signal(qtbot, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    watcher = ModelFolderWatcher([folder, folder / "classifiers"], debounce_ms=200)
    assert str(folder) in watcher.watched()
    emitted = []
    watcher.changed.connect(lambda: emitted.append(1))
    with qtbot.waitSignal(watcher.changed, timeout=10_000):
        for k in range(5):
            (folder / f"m{k}.safetensors").write_bytes(b"x")
    assert len(emitted) == 1 and not watcher.timer.isActive()  # one signal for the burst
    (folder / "classifiers").mkdir()
    qtbot.waitUntil(lambda: str(folder / "classifiers") in watcher.watched(), timeout=10_000)
