"""The Synthesise (LCO) tab driven as a user would: choose findings, run, read the bars,
export as DICOM with the labels in the file."""

import pydicom
import pytest
import torch

pytest.importorskip("pytestqt")

from PySide6.QtWidgets import QFileDialog, QInputDialog

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.settings import load_settings
from cxrgan_desktop.engine.checkpoints import OutputAdapter, save_generator
from cxrgan_desktop.engine.classifier.files import save_classifier
from cxrgan_desktop.engine.classifier.installed import classifiers_dir
from cxrgan_desktop.engine.classifier.model import ClassifierSpec, PathologyClassifier
from cxrgan_desktop.engine.pggan import Generator, PGGANConfig
from cxrgan_desktop.gui.panels.lco import LCOPanel
from cxrgan_desktop.gui.panels.lco_controller import probability_rows
from cxrgan_desktop.gui.shell.main_window import MainWindow

LABELS = ("Cardiomegaly", "Effusion", "Pneumothorax")


@pytest.fixture
def installed():
    torch.manual_seed(0)
    generator = save_generator(paths.models_dir() / "tiny.safetensors", Generator(
        PGGANConfig(latent_size=16, channels=(16, 16, 8, 8))), OutputAdapter(), "tiny")
    classifier = save_classifier(classifiers_dir() / "small.safetensors", PathologyClassifier(
        ClassifierSpec("densenet-small", LABELS, 32)).eval(), "small")
    return generator, classifier


def test_panel_lists_labels_and_builds_the_request(qtbot, installed):
    panel = LCOPanel()
    qtbot.addWidget(panel)
    assert panel.classifier_box.currentText() == "small"
    assert panel.judge_box.currentText() == "(none)"
    assert list(panel.choices) == list(LABELS)
    assert all(panel.choice(n) == "any" for n in LABELS)
    requests = []
    panel.lcoRequested.connect(requests.append)
    panel.request_lco()
    assert not requests and "at least one finding" in panel.status.text()
    panel.set_choice("Effusion", "present")
    panel.set_choice("Pneumothorax", "absent")
    panel.threshold.setValue(0.7)
    panel.run_button.click()
    (request,) = requests
    assert request.present == ("Effusion",) and request.absent == ("Pneumothorax",)
    assert request.threshold == 0.7 and request.classifier == str(installed[1])


def test_synthesise_fills_gallery_with_bars_and_exports_labelled_dicom(
        qtbot, installed, tmp_path, monkeypatch):
    window = MainWindow()
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: not window._device_probe.is_running(), timeout=20_000)
    panel = window.lco_panel
    panel.set_choice("Cardiomegaly", "present")
    panel.set_choice("Effusion", "absent")
    panel.threshold.setValue(0.5)
    panel.count.setValue(3)
    panel.steps.setValue(40)
    panel.judge_box.setCurrentIndex(panel.judge_box.findText("small"))
    panel.run_button.click()
    qtbot.waitUntil(panel.run_button.isEnabled, timeout=60_000)
    entries = window.gallery.entries()
    assert entries and all(e.title.startswith("LCO #") for e in entries)
    rows = probability_rows(entries[0])
    assert [(r.label, r.wanted) for r in rows] == [("Cardiomegaly", True), ("Effusion", False)]
    assert rows[0].judge == pytest.approx(rows[0].probability, abs=1e-4)
    window.gallery.setCurrentRow(0)
    assert [r.label for r in panel.bars.rows] == ["Cardiomegaly", "Effusion"]
    window.grab()  # paints the bars

    window.gallery.selectAll()
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a, **k: (a[3][2], True))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    window.export_selected()
    qtbot.waitUntil(lambda: not window.runner.is_running(), timeout=30_000)
    files = sorted(tmp_path.glob("*.dcm"))
    assert len(files) == len(entries)
    comments = pydicom.dcmread(files[0]).ImageComments
    assert "Cardiomegaly=yes" in comments and "Effusion=no" in comments
    window.close()
    prefs = load_settings().lco
    assert prefs.count == 3 and prefs.threshold == pytest.approx(0.5)
    assert prefs.judge.endswith("small.safetensors")
