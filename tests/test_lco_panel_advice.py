"""Issue 19, item 6 in the Synthesise tab: separate thresholds, findings the classifier cannot
read greyed and not offered, and the advice after a run accepted at step 0."""

import os
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from cxrgan_desktop.core import paths
from cxrgan_desktop.core.settings import load_settings
from cxrgan_desktop.engine.checkpoints import save_generator
from cxrgan_desktop.engine.classifier.files import save_classifier
from cxrgan_desktop.engine.classifier.installed import classifiers_dir
from cxrgan_desktop.gui.panels.lco import LCOPanel

SCREENSHOTS = os.environ.get("CXRGAN_SCREENSHOTS")  # a folder: save what the tests show

CARD = {
    "train_positives": {"Cardiomegaly": 40, "Effusion": 0, "Pneumothorax": 25},
    "validation": {"labels": [
        {"label": "Cardiomegaly", "auroc": 0.91, "positives": 10, "negatives": 40},
        {"label": "Effusion", "auroc": None, "positives": 0, "negatives": 50},
        {"label": "Pneumothorax", "auroc": 0.62, "positives": 6, "negatives": 44}]}}


@pytest.fixture
def installed(phantom_generator, phantom_classifier):
    _, loaded = phantom_classifier
    save_generator(paths.models_dir() / "phantom-tiny.safetensors",
                   phantom_generator.generator, phantom_generator.adapter, "phantom-tiny")
    return save_classifier(classifiers_dir() / "phantom-small.safetensors", loaded.classifier,
                           "phantom-small", CARD)


def _save(widget, name):
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(Path(SCREENSHOTS) / name))


def test_unreadable_findings_are_greyed_and_not_offered(qtbot, installed):
    panel = LCOPanel()
    qtbot.addWidget(panel)
    panel.resize(460, 760)
    assert set(panel.unreadable()) == {"Effusion", "Pneumothorax"}
    assert "no positive images in its training data" in panel.unreadable()["Effusion"]
    effusion = panel.choices["Effusion"]
    assert not effusion.buttons["present"].isEnabled()
    assert not effusion.buttons["absent"].isEnabled()
    assert "cannot read" in effusion.name_label.toolTip()
    assert "AUROC 0.62 is below 0.70" in panel.choices["Pneumothorax"].name_label.toolTip()
    assert panel.choices["Cardiomegaly"].buttons["present"].isEnabled()
    assert panel.allow_unreliable.isVisible() or not panel.isVisible()
    assert not panel.allow_unreliable.isChecked()  # not offered by default
    _save(panel, "lco_unreadable_findings.png")
    panel.allow_unreliable.setChecked(True)
    panel.set_choice("Effusion", "absent")
    assert effusion.buttons["absent"].isEnabled() and panel.choice("Effusion") == "absent"
    panel.allow_unreliable.setChecked(False)  # withdrawn: the choice falls back to any
    assert panel.choice("Effusion") == "any"


def test_separate_thresholds_reach_the_request(qtbot, installed):
    panel = LCOPanel()
    qtbot.addWidget(panel)
    requests = []
    panel.lcoRequested.connect(requests.append)
    panel.set_choice("Cardiomegaly", "present")
    panel.threshold.setValue(0.6)
    panel.absent_threshold.setValue(0.3)
    panel.request_lco()
    (request,) = requests
    assert request.threshold == 0.6 and request.absent_threshold == 0.3


def test_run_accepted_at_step_0_shows_the_advice(qtbot, installed, main_window):
    window = main_window
    window.resize(1400, 1000)
    panel = window.lco_panel
    window.show_task(panel)
    panel.set_choice("Cardiomegaly", "present")
    panel.threshold.setValue(0.001)  # the classifier reads it in every starting image
    panel.absent_threshold.setValue(0.3)
    panel.count.setValue(3)
    panel.steps.setValue(10)
    panel.batch_size.setValue(3)
    panel.run_button.click()
    qtbot.waitUntil(panel.run_button.isEnabled, timeout=60_000)
    qtbot.waitUntil(lambda: panel.advice.isVisibleTo(panel), timeout=10_000)
    text = panel.advice.text()
    assert "3 of 3 accepted samples passed at step 0" in text
    assert "nothing was optimised" in text and "raise the present threshold" in text
    assert panel.progress.value() == 1000
    window.gallery.setCurrentRow(0)
    _save(window, "lco_advice_window.png")
    _save(window.tasks, "lco_advice.png")
    window.close()
    assert load_settings().lco.absent_threshold == pytest.approx(0.3)
