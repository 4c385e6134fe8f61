"""The TSTR tab: a run from the panel on phantoms and their LCO archive, with the results
window, its export, the experiment file it leaves for the command line, and cancel."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QMessageBox

from cxrgan_desktop.core.settings import TSTRPreferences
from cxrgan_desktop.engine.tstr.config import load_config
from cxrgan_desktop.gui.panels.tstr import TSTRPanel
from tests.conftest import LCO_LABELS


@pytest.fixture
def no_dialogs(monkeypatch):
    shown: list[str] = []
    for kind in ("information", "warning", "critical"):
        monkeypatch.setattr(QMessageBox, kind, lambda *a, **k: shown.append(a[2]))
    return shown


def _preferences(experiment_data, out) -> TSTRPreferences:
    real_dir, real_labels, archive, _ = experiment_data
    return TSTRPreferences(real_images=str(real_dir), real_labels=str(real_labels),
                           synthetic_images=str(archive), arms=["real", "synthetic"],
                           architecture="densenet-small", input_size=32, epochs=1,
                           bootstrap=100, out_folder=str(out))


def _panel(qtbot, preferences) -> TSTRPanel:
    panel = TSTRPanel(preferences, "cpu")
    qtbot.addWidget(panel)
    return panel


def test_the_panel_says_what_is_missing(qtbot, tmp_path):
    panel = _panel(qtbot, TSTRPreferences())
    assert not panel.controls.run_button.isEnabled()
    tip = panel.controls.run_button.toolTip()
    assert "real images: choose a folder" in tip and "results folder" in tip
    panel.arm_boxes["scarce"].setChecked(True)
    assert panel.scarce_fractions.isEnabled() and panel.mix_ratio.isEnabled()


def test_a_run_from_the_panel_shows_and_exports_results(qtbot, experiment_data, tmp_path,
                                                         no_dialogs):
    preferences = _preferences(experiment_data, tmp_path / "out")
    panel = _panel(qtbot, preferences)
    panel.fill_labels()
    assert panel.labels.text() == ", ".join(LCO_LABELS)
    assert panel.controls.run_button.isEnabled()
    with qtbot.waitSignal(panel.resultsReady, timeout=300_000) as finished:
        panel.controls.run_button.click()
    qtbot.waitUntil(lambda: not panel.is_running())
    results, folder = finished.args
    assert folder == str(tmp_path / "out")
    assert set(results["arms"]) == {"real", "synthetic"}
    window = panel.windows[-1]
    qtbot.addWidget(window)
    assert window.table.rowCount() == 2 and window.table.item(0, 5).text() == "baseline"
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        "Arms", "AUROC per finding", "Report"]  # no scarce arms: no learning curve
    written = window.export_to(tmp_path / "export")
    assert sorted(p.name for p in written) == ["auroc.pdf", "auroc.png", "results.json",
                                               "results.txt"]
    assert json.loads((tmp_path / "export" / "results.json").read_text()) == \
        json.loads(json.dumps(results))
    twin = load_config(tmp_path / "out" / "experiment.toml")  # for cxrgan tstr
    assert twin.arms == ("real", "synthetic") and twin.classifier.epochs == 1
    assert twin.labels == LCO_LABELS
    assert preferences.labels == ", ".join(LCO_LABELS)  # remembered for next time
    assert "Done" in panel.controls.status.text()

    reopened = _panel(qtbot, preferences)
    reopened.open_results(tmp_path / "out" / "results.json")
    assert reopened.windows[-1].results == json.loads(json.dumps(results))
    qtbot.addWidget(reopened.windows[-1])
    reopened.open_results(tmp_path / "out" / "experiment.toml")
    assert "not" in reopened.controls.status.text()


def test_a_cancelled_run_says_what_was_kept(qtbot, experiment_data, tmp_path):
    panel = _panel(qtbot, _preferences(experiment_data, tmp_path / "out"))

    def cancel_when_training(fraction, message):
        if "epoch" in message or "arm" in message:
            panel.cancel()

    panel.controls.run_button.click()
    panel.runner.progress.connect(cancel_when_training)
    qtbot.waitUntil(lambda: not panel.is_running(), timeout=300_000)
    assert "Cancelled" in panel.controls.status.text()
    assert "run again to continue" in panel.controls.status.text()
    assert not panel.windows
